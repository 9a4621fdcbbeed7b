"""Shared fixtures: an isolated environment, the test gateway, test audio, the CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:  # make `import gateway` / `import audiogen` work
    sys.path.insert(0, str(TESTS_DIR))

import audiogen  # noqa: E402
from gateway import FakeGateway  # noqa: E402

API_KEY = "sk-test-SECRET-0123456789abcdef"
CLI = Path(sys.executable).parent / "sttcli"
CLI_TIMEOUT = 120.0

# Variables that would let a developer's own setup leak into a test.
SCRUBBED_ENV = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "PORTKEY_API_KEY",
    "REQUESTY_API_KEY",
    "GROQ_API_KEY",
    "AZURE_OPENAI_API_KEY",
    "FORCE_COLOR",
)


# --------------------------------------------------------------------------- environment


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No user config, keys or caches: STTCLI_CONFIG_DIR and the XDG dirs point into
    tmp_path, every STTCLI_* and provider key variable is removed, NO_COLOR=1.
    Returns the config dir."""
    for name in list(os.environ):
        if name.startswith("STTCLI_") or name in SCRUBBED_ENV:
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / "_env"
    config_dir = home / "sttcli-config"
    config_dir.mkdir(parents=True)
    monkeypatch.setenv("STTCLI_CONFIG_DIR", str(config_dir))
    for var, sub in (
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_CACHE_HOME", "cache"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_STATE_HOME", "state"),
    ):
        (home / sub).mkdir()
        monkeypatch.setenv(var, str(home / sub))
    monkeypatch.setenv("NO_COLOR", "1")
    return config_dir


# --------------------------------------------------------------------------- gateway


@pytest.fixture
def api_key() -> str:
    return API_KEY


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    """A running OpenAI-mode gateway that wants `Authorization: Bearer <api_key>`."""
    with FakeGateway(api_key=API_KEY) as gw:
        yield gw
    assert not gw.errors, "bug in tests/gateway.py:\n" + "\n".join(gw.errors)


@pytest.fixture
def gateway_factory() -> Iterator[Callable[..., FakeGateway]]:
    """make(**switches) -> a running FakeGateway (api_key defaults to the test key);
    all are closed at teardown."""
    started: list[FakeGateway] = []

    def make(**kwargs: Any) -> FakeGateway:
        kwargs.setdefault("api_key", API_KEY)
        gw = FakeGateway(**kwargs).start()
        started.append(gw)
        return gw

    yield make
    for gw in reversed(started):
        gw.close()
    errors = [e for gw in started for e in gw.errors]
    assert not errors, "bug in tests/gateway.py:\n" + "\n".join(errors)


# --------------------------------------------------------------------------- audio


@pytest.fixture(scope="session")
def speech_wav(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, list[audiogen.Burst]]:
    """A 20 s 16 kHz mono WAV of phrases and pauses, and its bursts (ground truth)."""
    path = tmp_path_factory.mktemp("audio") / "speech.wav"
    return audiogen.speech_file(path, 20.0)


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """run_cli(*args, env=None, stdin=None, timeout=120, cwd=None): run the installed
    `sttcli` console script in the isolated environment (plus `env` extras, where a value
    of None removes the variable), capturing text stdout and stderr."""
    if not CLI.exists():
        pytest.fail(f"console script not installed at {CLI}: run `pip install -e .`")

    def run(
        *args: str | os.PathLike[str],
        env: dict[str, str | None] | None = None,
        stdin: str | None = None,
        timeout: float = CLI_TIMEOUT,
        cwd: str | os.PathLike[str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        full_env = dict(os.environ)  # already isolated by the autouse fixture
        full_env.setdefault("COLUMNS", "200")  # keep rich from wrapping messages
        for key, value in (env or {}).items():
            if value is None:
                full_env.pop(key, None)
            else:
                full_env[key] = value
        return subprocess.run(
            [str(CLI), *(str(a) for a in args)],
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=full_env,
            timeout=timeout,
            cwd=cwd,
            check=False,
        )

    return run
