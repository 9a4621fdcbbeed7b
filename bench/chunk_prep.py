"""Chunk preparation cost versus one plain ffmpeg pass (not a test; prints a table).

    .venv/bin/python bench/chunk_prep.py           # 10 min, 1 h and 3 h inputs
    .venv/bin/python bench/chunk_prep.py --quick   # skip the 3 h input

Inputs are 44.1 kHz stereo 128 kb/s mp3 recordings of tone "phrases" (tests/audiogen.py),
made once in bench/out/ and reused. Each measurement runs in a fresh child process, which
samples /proc every 20 ms: its own peak RSS (VmHWM), the peak RSS of each of its ffmpeg
children, and the peak of everything at once (its RSS plus its children's: an upper
bound, as the shared-library pages every ffmpeg maps are counted in each). CPU seconds
(user + system, of the job and all its children) are reported beside wall time because
wall time is at the mercy of whatever else the machine is doing.
`getrusage(RUSAGE_CHILDREN).ru_maxrss` is not used: on Linux a child spawned by vfork
inherits the spawning process's high-water mark across exec, which inflates the numbers.

The baseline is `ffmpeg -i IN -ac 1 -ar 16000 OUT.wav`: the same decode and resample,
written as one file. Chunk files are deleted as they come (as after their upload) and
their bytes are summed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
LIMIT = 24_000_000
CASES = (("10 min", 600.0), ("1 h", 3600.0), ("3 h", 10800.0))


def make_input(seconds: float) -> Path:
    """A 44.1 kHz stereo 128k mp3 of `seconds`, made once."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"speech-{int(seconds)}s.mp3"
    if path.exists():
        return path
    sys.path.insert(0, str(ROOT / "tests"))
    from audiogen import schedule, write_recording  # type: ignore[import-not-found,unused-ignore]

    partial = path.with_suffix(".part.mp3")
    bursts = schedule(seconds, seed=1)
    codec = ["-c:a", "libmp3lame", "-b:a", "128k"]
    write_recording(partial, bursts, seconds, rate=44100, channels=2, codec_args=codec)
    partial.rename(path)
    return path


def child_prep(source: Path) -> dict[str, object]:
    """Probe, plan and cut one input (runs inside a fresh child process)."""
    from sttcli.chunking import cut_chunks, plan_split
    from sttcli.media import probe

    info = probe(source)
    plan = plan_split(info, max_upload_bytes=LIMIT, duration_cap=None, chunk_seconds=None)
    forced = plan is None
    if plan is None:  # one upload would do; measure the split anyway, in 5-minute chunks
        plan = plan_split(info, max_upload_bytes=LIMIT, duration_cap=None, chunk_seconds=300)
    assert plan is not None
    count, total, largest = 0, 0, 0
    with tempfile.TemporaryDirectory() as work:
        for chunk in cut_chunks(info, plan, Path(work)):
            count, total, largest = count + 1, total + chunk.size, max(largest, chunk.size)
            chunk.path.unlink()
    return {"chunks": count, "bytes": total, "largest": largest, "forced": forced,
            "input": info.size}  # fmt: skip


def child_ffmpeg(source: Path) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "out.wav"
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(source), "-ac", "1", "-ar", "16000"]
        subprocess.run([*cmd, str(out)], check=True)
        return {"bytes": out.stat().st_size}


def measure(kind: str, source: Path) -> dict[str, float]:
    """Run one job in a fresh child; its wall time, its peak RSS and its ffmpeg peak."""
    started = time.perf_counter()
    cmd = [sys.executable, __file__, "--child", kind, str(source)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    result["wall"] = time.perf_counter() - started
    return result


def _status_kb(pid: int | str, field: str, name: str = "status") -> int:
    try:
        with open(f"/proc/{pid}/{name}") as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children() -> list[str]:
    pids: list[str] = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        with contextlib.suppress(OSError):
            pids += (task / "children").read_text().split()
    return pids


class Sampler(threading.Thread):
    """Peak RSS of this process's children, and of this process plus them at once."""

    def __init__(self, count_self: bool) -> None:
        super().__init__(daemon=True)
        self.count_self = count_self  # the baseline counts only ffmpeg, not its launcher
        self.stop = threading.Event()
        self.child_kb = 0
        self.total_kb = 0  # RSS summed: shared library pages counted in every process

    def run(self) -> None:
        while not self.stop.is_set():
            kids = _children()
            total = _status_kb("self", "VmRSS:") if self.count_self else 0
            for pid in kids:
                total += _status_kb(pid, "VmRSS:")
                self.child_kb = max(self.child_kb, _status_kb(pid, "VmHWM:"))
            self.total_kb = max(self.total_kb, total)
            self.stop.wait(0.02)


def run_child(kind: str, source: Path) -> None:
    sampler = Sampler(count_self=kind == "prep")
    sampler.start()
    result = child_prep(source) if kind == "prep" else child_ffmpeg(source)
    sampler.stop.set()
    sampler.join()
    result["self_mb"] = _status_kb("self", "VmHWM:") / 1024
    result["ffmpeg_mb"] = sampler.child_kb / 1024
    result["total_mb"] = sampler.total_kb / 1024
    usages = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    result["cpu"] = sum(usage.ru_utime + usage.ru_stime for usage in usages)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 3 h input")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "SOURCE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child[0], Path(args.child[1]))
        return
    cases = CASES[:2] if args.quick else CASES
    header = (
        f"{'input':>7} {'MB':>6} {'chunks':>6} {'prep s':>6} {'ff s':>5} {'prep cpu':>8}"
        f" {'ff cpu':>6} {'cpu x':>5} {'py MB':>6} {'ff MB':>6} {'all MB':>6} {'base MB':>7}"
        f" {'mem x':>5} {'chunks/in':>9}"
    )
    print(header)
    for label, seconds in cases:
        source = make_input(seconds)
        prep = measure("prep", source)
        base = measure("ffmpeg", source)
        note = "  (forced split: one upload would do)" if prep["forced"] else ""
        print(
            f"{label:>7} {prep['input'] / 1e6:6.1f} {prep['chunks']:6.0f}"
            f" {prep['wall']:6.1f} {base['wall']:5.1f} {prep['cpu']:8.1f} {base['cpu']:6.1f}"
            f" {prep['cpu'] / base['cpu']:5.2f} {prep['self_mb']:6.1f} {prep['ffmpeg_mb']:6.1f}"
            f" {prep['total_mb']:6.1f} {base['ffmpeg_mb']:7.1f}"
            f" {prep['total_mb'] / base['ffmpeg_mb']:5.2f} {prep['bytes'] / prep['input']:9.1%}"
            f"{note}",
            flush=True,
        )
    print(
        "\nprep: probe + plan + cut_chunks (FLAC chunks, 24 MB limit) in a fresh child process;"
        "\nff: one `ffmpeg -i IN -ac 1 -ar 16000 OUT.wav` pass. s = wall seconds; cpu = user +"
        "\nsystem seconds of the job and all its processes; cpu x = prep cpu / ff cpu."
        "\npy MB: peak RSS of the Python process; ff MB: peak RSS of its largest ffmpeg child;"
        "\nall MB: peak RSS of Python + decoder + encoder at once (shared libraries counted"
        "\ntwice); base MB: peak RSS of the plain ffmpeg; mem x = all / base;"
        "\nchunks/in: bytes of all chunk files / bytes of the input."
        f"\nload average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )


if __name__ == "__main__":
    main()
