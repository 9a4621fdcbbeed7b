"""The exception hierarchy. Each error knows its exit code and a one-line hint.

`cli.main` is the only place that turns these into a message and an exit status.
Messages must never contain secrets: build them from file names, status codes and
endpoint messages, never from headers or request objects.
"""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1
    USAGE = 2
    INPUT = 3
    CONFIG = 4
    ENDPOINT = 5
    PARTIAL = 6
    INTERRUPTED = 130


class SttcliError(Exception):
    """Base of every error meant for the user: one line, the file, the cause, the fix."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(
        self,
        cause: str,
        *,
        file: str | Path | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(cause)
        self.cause = cause
        self.file = str(file) if file is not None else None
        self.hint = hint

    def with_file(self, file: str | Path) -> SttcliError:
        """Attach the input file this error concerns, unless one is already named."""
        if self.file is None:
            self.file = str(file)
        return self

    def __str__(self) -> str:
        return self.one_line()

    def one_line(self) -> str:
        parts = [self.file, self.cause] if self.file else [self.cause]
        line = ": ".join(parts)
        if self.hint:
            line = f"{line} ({self.hint})"
        return line.replace("\n", " ")


class UsageError(SttcliError):
    exit_code = ExitCode.USAGE


class InputError(SttcliError):
    """Missing, unreadable, unsupported or undecodable input."""

    exit_code = ExitCode.INPUT


class ConfigError(SttcliError):
    """Configuration or authentication: no key, 401/403, unknown model or gateway."""

    exit_code = ExitCode.CONFIG


class EndpointError(SttcliError):
    """The endpoint failed after retries: 5xx, timeouts, connection, 429 exhausted."""

    exit_code = ExitCode.ENDPOINT

    def __init__(
        self,
        cause: str,
        *,
        file: str | Path | None = None,
        hint: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(cause, file=file, hint=hint)
        self.status = status


class RequestRejected(EndpointError):
    """A 4xx the endpoint will answer the same way again (400, 413, 422...): not retried.

    Exit code 3 when the input itself was refused (e.g. 413 or an undecodable upload),
    otherwise the endpoint's verdict on our request counts as an endpoint failure.
    """

    def __init__(
        self,
        cause: str,
        *,
        file: str | Path | None = None,
        hint: str | None = None,
        status: int | None = None,
        param: str | None = None,
        code: str | None = None,
        input_fault: bool = False,
    ) -> None:
        super().__init__(cause, file=file, hint=hint, status=status)
        self.param = param
        self.code = code
        if input_fault:
            self.exit_code = ExitCode.INPUT
