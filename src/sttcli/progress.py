"""Showing progress events: rich bars on a terminal, plain lines on stderr otherwise.

Everything here writes to stderr; stdout is reserved for results.
"""

from __future__ import annotations

from dataclasses import dataclass
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
        self._counts: dict[str, Counts] = {}

    def __enter__(self) -> Reporter:
        if self.tty and not self.quiet:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[counts]}"),
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
        counts = self._counts.setdefault(event.file, Counts())
        counts.add(event)
        if self._progress is not None:
            self._advance(self._progress, event, counts)
        elif event.kind is Kind.UPLOADED and not self.quiet and worth_a_line(counts, event.total):
            of = f"/{event.total}" if event.total else ""
            self.line(f"{event.file}: {counts.done}{of} requests done, {counts.describe()}")

    def _advance(self, progress: Progress, event: Event, counts: Counts) -> None:
        if event.kind is Kind.PLAN:
            task = progress.add_task(event.file, total=event.total, counts="")
            self._tasks[event.file] = task
            return
        if event.file in self._tasks:
            progress.update(
                self._tasks[event.file],
                completed=counts.done,
                total=event.total,
                counts=counts.describe(),
            )

    def line(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(f"sttcli: {text}", markup=False)
        else:
            print(f"sttcli: {text}", file=self.stderr, flush=True)


@dataclass
class Counts:
    """One file's chunks prepared, requests done and bytes sent so far."""

    prepared: int = 0
    done: int = 0
    sent: int = 0

    def add(self, event: Event) -> None:
        if event.kind is Kind.PREPARED:
            self.prepared += 1
        elif event.kind is Kind.UPLOADED:
            self.done += 1
            self.sent += event.bytes

    def describe(self) -> str:
        prepared = f"{self.prepared} prepared, " if self.prepared else ""
        return f"{prepared}{self.sent / 1e6:.1f} MB sent"


def worth_a_line(counts: Counts, total: int | None) -> bool:
    """Plain output stays short: every request of a few, every tenth of many."""
    done = counts.done
    if total is None:
        return done % 25 == 0
    if total <= 1:
        return False
    return total <= 20 or done == total or done % max(1, total // 10) == 0
