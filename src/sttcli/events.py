"""Progress events: what the pipeline and client report, for progress.py to show.

Kept free of terminal concerns so the core never imports rich.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum


class Kind(str, Enum):
    NOTICE = "notice"  # one line a person should see (conversion, fallback, usage)
    PLAN = "plan"  # how a file will be sent: total = number of requests
    PREPARED = "prepared"  # a chunk file is ready (index, bytes)
    UPLOADING = "uploading"
    UPLOADED = "uploaded"  # a request finished (index, bytes)
    RETRY = "retry"  # a request will be retried (message says why and when)
    DEBUG = "debug"  # only shown with --debug; never holds secrets


@dataclass(frozen=True)
class Event:
    kind: Kind
    file: str
    message: str = ""
    index: int | None = None
    total: int | None = None
    bytes: int = 0
    seconds: float = 0.0


Emit = Callable[[Event], None]


def ignore(_event: Event) -> None:
    """An Emit that drops everything."""
