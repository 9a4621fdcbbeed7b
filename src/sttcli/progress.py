"""Showing progress events: rich bars on a terminal, plain lines on stderr otherwise.

Everything here writes to stderr; stdout is reserved for results.
"""

from __future__ import annotations

from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from sttcli.events import Event, Kind


class Reporter:
    """Turns events into output. Use as a context manager around a run."""

    def __init__(self, stderr: TextIO, *, tty: bool, quiet: bool = False, debug: bool = False):
        self.console = Console(file=stderr, force_terminal=tty or None, highlight=False)
        self.stderr = stderr
        self.tty = tty
        self.quiet = quiet
        self.debug = debug
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._sent: dict[str, int] = {}

    def __enter__(self) -> Reporter:
        if self.tty and not self.quiet:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, event: Event) -> None:
        if event.kind is Kind.DEBUG:
            if self.debug:
                self.line(f"debug: {event.file}: {event.message}")
            return
        if event.kind in (Kind.NOTICE, Kind.RETRY):
            if not self.quiet:
                prefix = f"{event.file}: " if event.file else ""
                self.line(f"{prefix}{event.message}")
            return
        if self._progress is not None:
            self._advance(self._progress, event)
        elif event.kind is Kind.UPLOADED and not self.quiet:
            done = self._sent[event.file] = self._sent.get(event.file, 0) + 1
            if worth_a_line(done, event.total):
                of = f"/{event.total}" if event.total else ""
                self.line(f"{event.file}: {done}{of} requests done")

    def _advance(self, progress: Progress, event: Event) -> None:
        if event.kind is Kind.PLAN:
            self._tasks[event.file] = progress.add_task(event.file, total=event.total)
            return
        task = self._tasks.get(event.file)
        if task is None:
            return
        if event.kind is Kind.UPLOADED:
            progress.update(task, advance=1, total=event.total)

    def line(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(f"sttcli: {text}", markup=False)
        else:
            print(f"sttcli: {text}", file=self.stderr, flush=True)


def worth_a_line(done: int, total: int | None) -> bool:
    """Plain output stays short: every request of a few, every tenth of many."""
    if total is None:
        return done % 25 == 0
    if total <= 1:
        return False
    return total <= 20 or done == total or done % max(1, total // 10) == 0
