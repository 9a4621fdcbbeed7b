"""End-to-end transcription time versus concurrency (not a test; prints a table).

    .venv/bin/python bench/e2e.py                    # 30 min input, -j 1,4,8, 120 s chunks
    .venv/bin/python bench/e2e.py --quick            # a 6 min input
    .venv/bin/python bench/e2e.py --latency-per-second 0.02 --concurrency 1,2,4

The input is a 44.1 kHz stereo 128 kb/s mp3 of tone "phrases" (tests/audiogen.py, seed 1,
the same files bench/chunk_prep.py makes), made once in bench/out/ and reused. A 30 min one
is about 28.8 MB, over the 25 MiB default upload cap, so even the default run splits it.

The endpoint is tests/gateway.py's FakeGateway, started in this process on 127.0.0.1. Its
`latency_per_audio_second` makes each request cost time in proportion to its audio (0.01 s
per audio second: a 10 min chunk takes 6 s, about a real endpoint's speed), on top of its
own work (decoding the upload, finding the bursts). The installed `sttcli` runs as a child
process for each concurrency with a fixed --chunk-seconds, then once with the default split
(by size) at -j 4; the gateway is reset between runs.

Columns:
  requests        requests the gateway saw (all must be 200s)
  speed-up        wall time of the -j 1 run with the same chunking / this run's wall time
  max in flight   the most requests the gateway was serving at once
  MB up, up/input sum of the uploaded files' bytes, and that over the input file's size
  peak RSS        ru_maxrss from os.wait4 on the CLI: the largest of the CLI process and the
                  children it reaped (its ffmpeg decoder and encoders). The CLI is started by
                  a small launcher process, not by this one (see LAUNCHER for why)
  sim work        sum of the simulated latencies (what a real endpoint would spend)
  ideal           max(sim work / min(N, requests), the longest one request): the wall time
                  if nothing but the simulated work took time
  overhead        wall - ideal: start-up, probing, decoding and encoding chunks, uploads, the
                  gateway's own decoding, stitching and writing
  1st request     seconds from launch until the gateway received the first request
  request gap     mean time between requests arriving: how fast chunks are made and sent
  last answer     seconds from launch until it answered the last one

Every output is checked against the truth before it is reported: the SRT (parsed with the
`srt` library) must have one cue per phrase (bursts grouped by gaps < 0.5 s), with the same
words, and the first and last cues within 50 ms of the truth. Otherwise FAIL is printed
and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import srt

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
TESTS = ROOT / "tests"
if str(TESTS) not in sys.path:  # make `import audiogen` / `import gateway` work
    sys.path.insert(0, str(TESTS))

from audiogen import schedule, write_recording  # noqa: E402
from checks import Cue, phrases  # noqa: E402
from conftest import SCRUBBED_ENV  # noqa: E402
from gateway import FakeGateway, RequestRecord  # noqa: E402

CLI = Path(sys.executable).parent / "sttcli"
API_KEY = "sk-bench-e2e-0123456789abcdef"
SEED = 1
TOLERANCE = 0.050  # seconds, for the first and last cues
QUICK_MINUTES = 6.0
DEFAULT_MINUTES = 30.0
DEFAULT_SPLIT_CONCURRENCY = 4
SETTLE_SECONDS = 5.0  # longest wait for the gateway to finish a request after the CLI exits


# --------------------------------------------------------------------------- input and truth


def make_input(seconds: float) -> Path:
    """A 44.1 kHz stereo 128k mp3 of `seconds`, made once (the name bench/chunk_prep.py
    uses, with the same seed, so either script can reuse the other's files)."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"speech-{int(seconds)}s.mp3"
    if path.exists():
        return path
    partial = path.with_suffix(".part.mp3")
    codec = ["-c:a", "libmp3lame", "-b:a", "128k"]
    bursts = schedule(seconds, seed=SEED)
    write_recording(partial, bursts, seconds, rate=44100, channels=2, codec_args=codec)
    partial.rename(path)  # only a complete file ever has the final name
    return path


def check_srt(text: str, truth: Sequence[Cue]) -> str | None:
    """None if the SRT matches the truth; otherwise what is wrong."""
    try:
        cues = list(srt.parse(text))
    except srt.SRTParseError as exc:
        return f"the SRT does not parse: {exc}"
    if len(cues) != len(truth):
        return f"{len(cues)} cues, expected {len(truth)}"
    if not cues:
        return None
    texts = [" ".join(c.content.split()) for c in cues]
    wrong = next((i for i, t in enumerate(truth) if texts[i] != t.text), None)
    if wrong is not None:
        return f"cue {wrong + 1} says {texts[wrong]!r}, expected {truth[wrong].text!r}"
    for name, cue, want in (("first", cues[0], truth[0]), ("last", cues[-1], truth[-1])):
        start, end = cue.start.total_seconds(), cue.end.total_seconds()
        error = max(abs(start - want.start), abs(end - want.end))
        if error > TOLERANCE:
            return (
                f"the {name} cue is {start:.3f}-{end:.3f} s, expected"
                f" {want.start:.3f}-{want.end:.3f} s ({error * 1000:.0f} ms off)"
            )
    return None


# --------------------------------------------------------------------------- running the CLI


@dataclass
class Exit:
    code: int
    wall: float
    maxrss_kb: int
    timed_out: bool
    started: float  # time.monotonic() at launch


# The CLI is started by this small, fresh Python process rather than by the benchmark: a
# child's ru_maxrss starts from its parent's high-water RSS (the kernel carries the old
# address space's peak across fork/vfork and exec), so a CLI spawned by this process, which
# also runs the gateway and its numpy work, would report this process's peak instead of its
# own. The launcher's peak is ~10 MB, well under the CLI's. It prints one JSON line.
LAUNCHER = """
import json, os, signal, subprocess, sys, threading, time
cmd, timeout, stderr_path = json.loads(sys.argv[1])
reaped = []
with open(stderr_path, "wb") as err:
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=err, start_new_session=True)
    def reap():
        _, status, usage = os.wait4(proc.pid, 0)
        reaped.append((time.monotonic(), status, usage.ru_maxrss))
    waiter = threading.Thread(target=reap, daemon=True)
    waiter.start()
    waiter.join(timeout)
    timed_out = waiter.is_alive()
    if timed_out:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        waiter.join(10.0)
if reaped:
    ended, status, maxrss = reaped[0]
    proc.returncode = os.waitstatus_to_exitcode(status)
    print(json.dumps([started, ended, proc.returncode, maxrss, timed_out]))
"""
LAUNCHER_GRACE = 30.0  # beyond --timeout, for the launcher itself


def run_measured(
    cmd: Sequence[str], env: dict[str, str], timeout: float, stderr_path: Path
) -> Exit:
    """Run `cmd` through LAUNCHER, which reaps it with os.wait4 (for its ru_maxrss: the
    larger of the CLI's own peak and its reaped ffmpeg children's) and times it with the
    system-wide monotonic clock, the gateway's. On timeout the CLI's process group (itself
    and its ffmpeg children, nothing else) is killed."""
    launch = [sys.executable, "-I", "-S", "-c", LAUNCHER]
    launch.append(json.dumps([list(cmd), timeout, str(stderr_path)]))
    try:
        done = subprocess.run(
            launch, env=env, capture_output=True, text=True, timeout=timeout + LAUNCHER_GRACE
        )
    except subprocess.TimeoutExpired:  # run() has killed the launcher
        raise RuntimeError(f"the launcher for {cmd[0]} did not finish") from None
    try:
        started, ended, code, maxrss, timed_out = json.loads(done.stdout)
    except ValueError:
        raise RuntimeError(f"the launcher failed: {done.stderr.strip()[-500:]}") from None
    return Exit(int(code), float(ended - started), int(maxrss), bool(timed_out), float(started))


def cli_env(config_home: Path) -> dict[str, str]:
    """The environment minus anything of the developer's own (config, keys, STTCLI_*)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("STTCLI_") and k not in SCRUBBED_ENV
    }
    for var, sub in (
        ("STTCLI_CONFIG_DIR", "sttcli-config"),
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_CACHE_HOME", "cache"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_STATE_HOME", "state"),
    ):
        (config_home / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(config_home / sub)
    env["NO_COLOR"] = "1"
    env["STTCLI_API_KEY"] = API_KEY
    return env


# --------------------------------------------------------------------------- one run


@dataclass
class Result:
    label: str
    concurrency: int
    chunk_seconds: float | None
    command: list[str]
    wall: float = 0.0
    code: int = 0
    requests: int = 0
    not_ok: int = 0
    max_in_flight: int = 0
    bytes_up: int = 0
    maxrss_kb: int = 0
    sim_work: float = 0.0
    longest_sim: float = 0.0
    server_busy: float = 0.0
    first_request: float = 0.0
    last_received: float = 0.0
    last_answer: float = 0.0
    durations: list[float] = field(default_factory=list)
    failure: str | None = None

    @property
    def request_gap(self) -> float:
        return (self.last_received - self.first_request) / max(1, self.requests - 1)

    @property
    def ideal(self) -> float:
        lanes = max(1, min(self.concurrency, self.requests))
        return max(self.sim_work / lanes, self.longest_sim)


def settle(gw: FakeGateway) -> None:
    """Wait (bounded) until the gateway has finished every request it received."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while gw.in_flight > 0 and time.monotonic() < deadline:
        time.sleep(0.01)


def run_one(
    gw: FakeGateway,
    source: Path,
    truth: Sequence[Cue],
    *,
    concurrency: int,
    chunk_seconds: float | None,
    label: str,
    work: Path,
    env: dict[str, str],
    timeout: float,
) -> Result:
    output = work / f"{label}.srt"
    cmd = [str(CLI), "transcribe", str(source), "-f", "srt", "--base-url", gw.base_url]
    if chunk_seconds is not None:
        cmd += ["--chunk-seconds", f"{chunk_seconds:g}"]
    cmd += ["-j", str(concurrency), "-q", "-o", str(output)]
    result = Result(label, concurrency, chunk_seconds, cmd)

    settle(gw)
    gw.reset()
    stderr_path = work / f"{label}.stderr"
    done = run_measured(cmd, env, timeout, stderr_path)
    settle(gw)
    records: list[RequestRecord] = list(gw.requests)

    result.wall, result.code, result.maxrss_kb = done.wall, done.code, done.maxrss_kb
    result.requests = len(records)
    result.not_ok = sum(r.status != 200 for r in records)
    result.max_in_flight = gw.max_in_flight
    result.bytes_up = sum(r.file_bytes for r in records)
    per_request = [gw.latency + gw.latency_per_audio_second * (r.duration or 0.0) for r in records]
    result.sim_work = sum(per_request)
    result.longest_sim = max(per_request, default=0.0)
    result.durations = [r.duration or 0.0 for r in records]
    result.server_busy = sum((r.answered or r.received) - r.received for r in records)
    if records:
        result.first_request = min(r.received for r in records) - done.started
        result.last_received = max(r.received for r in records) - done.started
        result.last_answer = max((r.answered or r.received) for r in records) - done.started

    stderr = stderr_path.read_text("utf-8", "replace").strip()
    if done.timed_out:
        result.failure = f"timed out after {timeout:g} s"
    elif done.code != 0:
        tail = stderr.splitlines()[-1] if stderr else "(no stderr)"
        result.failure = f"sttcli exited {done.code}: {tail}"
    elif result.not_ok:
        result.failure = f"{result.not_ok} of {result.requests} requests were not answered 200"
    elif not output.exists():
        result.failure = "no output file"
    else:
        result.failure = check_srt(output.read_text("utf-8"), truth)
    return result


# --------------------------------------------------------------------------- reporting


def fmt_chunk(seconds: float | None) -> str:
    return "default" if seconds is None else f"{seconds:g}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    for row in rows:
        cells = (c.rjust(w) for c, w in zip(row, widths, strict=True))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(results: Sequence[Result], input_bytes: int) -> str:
    baseline = {r.chunk_seconds: r.wall for r in results if r.concurrency == 1 and not r.failure}
    base_any = next((r.wall for r in results if r.concurrency == 1 and not r.failure), None)
    main_rows = []
    for r in results:
        base = baseline.get(r.chunk_seconds, base_any)
        mark = "" if r.chunk_seconds in baseline else "*"
        speedup = f"{base / r.wall:.2f}{mark}" if base and r.wall > 0 else "-"
        main_rows.append([
            str(r.concurrency),
            fmt_chunk(r.chunk_seconds),
            str(r.requests),
            f"{r.wall:.1f}",
            speedup,
            str(r.max_in_flight),
            f"{r.bytes_up / 1e6:.1f}",
            f"{r.bytes_up / input_bytes:.2f}",
            f"{r.maxrss_kb / 1024:.0f}",
            "FAIL" if r.failure else "ok",
        ])  # fmt: skip
    main = table(
        ["-j", "chunk s", "requests", "wall s", "speed-up", "max in flight", "MB up",
         "up/input", "peak RSS MB", "check"],
        main_rows,
    )  # fmt: skip
    time_rows = []
    for r in results:
        mean = sum(r.durations) / len(r.durations) if r.durations else 0.0
        time_rows.append([
            str(r.concurrency),
            fmt_chunk(r.chunk_seconds),
            f"{mean:.0f}",
            f"{r.sim_work:.1f}",
            f"{r.ideal:.1f}",
            f"{r.wall:.1f}",
            f"{r.wall - r.ideal:.1f}",
            f"{r.server_busy - r.sim_work:.1f}",
            f"{r.first_request:.1f}",
            f"{r.request_gap:.2f}" if r.requests > 1 else "-",
            f"{r.last_received:.1f}",
            f"{r.last_answer:.1f}",
            f"{r.wall - r.last_answer:.1f}",
        ])  # fmt: skip
    timing = table(
        ["-j", "chunk s", "audio s/req", "sim work s", "ideal s", "wall s", "overhead s",
         "gw own work s", "1st request s", "request gap s", "last request s",
         "last answer s", "after s"],
        time_rows,
    )  # fmt: skip
    notes = []
    if any(r.chunk_seconds not in baseline for r in results):
        notes.append("* against the -j 1 run with a fixed --chunk-seconds (other chunking).")
    notes.append(
        "gw own work: the gateway's time on requests beyond the simulated latency (reading the"
        " upload, decoding it with ffmpeg, finding bursts), summed over requests; it runs in"
        " this process, on the same CPUs as the CLI. 1st/last request, last answer: seconds"
        " from launch; request gap: mean time between arrivals; after: from the last answer"
        " to exit."
    )
    return f"{main}\n\n{timing}\n\n" + "\n".join(notes)


# --------------------------------------------------------------------------- main


def parse_concurrency(value: str) -> list[int]:
    try:
        levels = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {value!r}") from None
    if not levels or any(n < 1 for n in levels):
        raise argparse.ArgumentTypeError("concurrency levels must be integers >= 1")
    return levels


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time `sttcli transcribe` end to end against the test gateway.",
    )
    parser.add_argument(
        "--minutes", type=float, default=None,
        help=f"length of the recording (default {DEFAULT_MINUTES:g}; {QUICK_MINUTES:g} with"
        " --quick)",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help=f"a {QUICK_MINUTES:g}-minute input")
    parser.add_argument(
        "--latency-per-second", type=float, default=0.01,
        help="simulated transcription seconds per second of uploaded audio (default 0.01)",
    )  # fmt: skip
    parser.add_argument(
        "--chunk-seconds", type=float, default=120.0,
        help="--chunk-seconds for the concurrency runs (default 120)",
    )  # fmt: skip
    parser.add_argument(
        "--concurrency", type=parse_concurrency, default=[1, 4, 8], metavar="N,N,...",
        help="concurrency levels to run with --chunk-seconds (default 1,4,8)",
    )  # fmt: skip
    parser.add_argument(
        "--no-default-split", action="store_true",
        help=f"skip the run without --chunk-seconds (at -j {DEFAULT_SPLIT_CONCURRENCY})",
    )  # fmt: skip
    parser.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="seconds allowed for each sttcli run (default 900)",
    )
    args = parser.parse_args(argv)
    if args.quick and args.minutes is not None:
        parser.error("--quick and --minutes exclude each other")
    if args.minutes is None:
        args.minutes = QUICK_MINUTES if args.quick else DEFAULT_MINUTES
    if args.minutes <= 0 or args.latency_per_second < 0 or args.timeout <= 0:
        parser.error("--minutes and --timeout must be positive, --latency-per-second >= 0")
    if args.chunk_seconds < 5:
        parser.error("--chunk-seconds must be at least 5 (sttcli's minimum)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not CLI.exists():
        print(f"e2e: no sttcli at {CLI} (run `pip install -e .` in this venv)", file=sys.stderr)
        return 2
    began = time.monotonic()
    seconds = args.minutes * 60.0
    print(f"e2e: input {seconds:g} s ...", file=sys.stderr, flush=True)
    made = time.monotonic()
    source = make_input(seconds)
    made = time.monotonic() - made
    truth = phrases(schedule(seconds, seed=SEED))
    input_bytes = source.stat().st_size
    print(
        f"e2e: {source.relative_to(ROOT)}: {input_bytes / 1e6:.1f} MB, {len(truth)} phrases"
        f" ({made:.1f} s to make or find)",
        file=sys.stderr,
        flush=True,
    )

    plan: list[tuple[int, float | None]] = [(n, args.chunk_seconds) for n in args.concurrency]
    if not args.no_default_split:
        plan.append((DEFAULT_SPLIT_CONCURRENCY, None))

    results: list[Result] = []
    gw = FakeGateway(api_key=API_KEY, latency_per_audio_second=args.latency_per_second)
    try:
        gw.start()
        with tempfile.TemporaryDirectory(prefix="sttcli-e2e-") as tmp:
            work = Path(tmp)
            env = cli_env(work / "env")
            for concurrency, chunk in plan:
                label = f"j{concurrency}-c{fmt_chunk(chunk)}"
                result = run_one(
                    gw, source, truth, concurrency=concurrency, chunk_seconds=chunk,
                    label=label, work=work, env=env, timeout=args.timeout,
                )  # fmt: skip
                results.append(result)
                verdict = f"FAIL: {result.failure}" if result.failure else "ok"
                print(
                    f"e2e: -j {concurrency} chunk {fmt_chunk(chunk)}: {result.wall:.1f} s,"
                    f" {result.requests} requests, {verdict}",
                    file=sys.stderr,
                    flush=True,
                )
        if gw.errors:
            print(f"e2e: the gateway hit {len(gw.errors)} internal errors", file=sys.stderr)
    finally:
        gw.close()

    total = time.monotonic() - began
    print()
    print(
        f"sttcli end to end: {source.name} ({seconds / 60:g} min, {input_bytes / 1e6:.1f} MB,"
        f" {len(truth)} phrases), FakeGateway at {args.latency_per_second:g} s per audio"
        f" second, {os.cpu_count()} CPUs"
    )
    print()
    print(report(results, input_bytes))
    print()
    for r in results:
        if r.failure:
            print(f"FAIL -j {r.concurrency} chunk {fmt_chunk(r.chunk_seconds)}: {r.failure}")
    print(f"bench: {shlex.join([os.path.relpath(sys.executable), *sys.argv])}  ({total:.0f} s)")
    for r in results:
        print(f"run:   STTCLI_API_KEY=... {shlex.join(r.command)}")
    return 1 if any(r.failure for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
