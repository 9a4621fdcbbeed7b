"""sttcli: transcribe recordings of any length through OpenAI-compatible endpoints."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sttcli")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"
