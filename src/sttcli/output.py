"""Writing results: stdout, or a file replaced atomically (never half-written)."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

from sttcli.errors import UsageError


def output_path(target: str, source_name: str, extension: str) -> Path:
    """`-o DIR` names the file after the input; `-o FILE` is used as given."""
    path = Path(target)
    if path.is_dir():
        stem = Path(source_name).stem if source_name != "<stdin>" else "stdin"
        return path / f"{stem}.{_suffix(extension)}"
    return path


def _suffix(extension: str) -> str:
    return "json" if extension == "verbose_json" else "txt" if extension == "text" else extension


def write_output(text: str, target: str | None, *, source_name: str, extension: str) -> Path | None:
    """Write the result; the file written, or None for stdout."""
    if target is None or target == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return None
    path = output_path(target, source_name, extension)
    if not path.parent.is_dir():
        raise UsageError(
            f"cannot write {path}: folder {path.parent} does not exist",
            hint="create it or choose another --output",
        )
    write_atomically(path, text)
    return path


def write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
