"""What the reporter prints on a non-terminal: short plain lines on stderr, nothing on
stdout, debug only with --debug, only errors with --quiet."""

from __future__ import annotations

import io

from sttcli.events import Event, Kind
from sttcli.progress import Reporter


def feed(reporter: Reporter, requests: int) -> None:
    reporter(Event(Kind.NOTICE, "a.mp3", "splitting: 3 chunks"))
    reporter(Event(Kind.PLAN, "a.mp3", "chunks", total=requests))
    reporter(Event(Kind.DEBUG, "a.mp3", "POST ... headers=<redacted>"))
    for index in range(requests):
        reporter(Event(Kind.PREPARED, "a.mp3", index=index, bytes=1_000_000))
        reporter(Event(Kind.UPLOADED, "a.mp3", index=index, total=requests, bytes=1_000_000))


def run(requests: int, **options: bool) -> list[str]:
    stream = io.StringIO()
    with Reporter(stream, tty=False, **options) as reporter:
        feed(reporter, requests)
    return stream.getvalue().splitlines()


def test_plain_lines_count_requests_prepared_and_bytes() -> None:
    lines = run(3)
    assert lines == [
        "sttcli: a.mp3: splitting: 3 chunks",
        "sttcli: a.mp3: 1/3 requests done, 1 prepared, 1.0 MB sent",
        "sttcli: a.mp3: 2/3 requests done, 2 prepared, 2.0 MB sent",
        "sttcli: a.mp3: 3/3 requests done, 3 prepared, 3.0 MB sent",
    ]


def test_many_requests_print_about_ten_lines() -> None:
    lines = [line for line in run(200) if "requests done" in line]
    assert len(lines) == 10
    assert lines[-1].startswith("sttcli: a.mp3: 200/200 requests done")


def test_quiet_prints_nothing_and_debug_adds_debug_lines() -> None:
    assert run(3, quiet=True) == []
    debug = run(3, debug=True)
    assert "sttcli: debug: a.mp3: POST ... headers=<redacted>" in debug
    assert not any("debug" in line for line in run(3))
