"""Timestamp accuracy across chunk seams (not a test: prints numbers).

Transcribes generated recordings whose every word is known (tests/audiogen.py) through the
test gateway and compares each word the CLI returns with the truth: words lost, words
duplicated, and how far each start/end is from where its burst is. Three cases: split by
size in silences, forced 60 s chunks, and speech with no silence at all (cut at the
quietest point, overlapped by 2 s, deduplicated by time). Then the same recordings through
a model without timestamps (utterance cues timed from the audio).

    .venv/bin/python bench/accuracy.py            # 1 h input
    .venv/bin/python bench/accuracy.py --quick    # 10 min input
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import srt

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(ROOT / "bench"))

from audiogen import Burst, continuous_schedule, schedule, write_recording  # noqa: E402
from checks import phrases  # noqa: E402
from e2e import SEED, make_input  # noqa: E402
from gateway import FakeGateway  # noqa: E402

CLI = Path(sys.executable).parent / "sttcli"
KEY = "bench-key"


@dataclass(frozen=True)
class Row:
    case: str
    requests: int
    words: int
    lost: int
    extra: int
    max_ms: float
    mean_ms: float


def run_cli(path: Path, gw: FakeGateway, *args: str) -> str:
    result = subprocess.run(
        [str(CLI), "transcribe", str(path), "--base-url", gw.base_url, "-q", *args],
        capture_output=True, text=True, env={**os.environ, "STTCLI_API_KEY": KEY},
        check=False, timeout=3600,
    )  # fmt: skip
    if result.returncode != 0:
        sys.exit(f"FAIL: sttcli exited {result.returncode}: {result.stderr[-2000:]}")
    return result.stdout


def compare(case: str, got: list[tuple[str, float, float]], truth: list[Burst], n: int) -> Row:
    words = [w for w, _, _ in got]
    expected = [b.word for b in truth]
    lost = max(0, len(expected) - len(words))
    extra = max(0, len(words) - len(expected))
    if words != expected:
        return Row(case, n, len(words), lost or -1, extra, float("nan"), float("nan"))
    errors = [
        max(abs(s - b.start), abs(e - b.end)) * 1000
        for (_, s, e), b in zip(got, truth, strict=True)
    ]
    return Row(case, n, len(words), 0, 0, max(errors), sum(errors) / len(errors))


def word_case(case: str, path: Path, truth: list[Burst], gw: FakeGateway, *args: str) -> Row:
    gw.reset()
    out = json.loads(run_cli(path, gw, "-f", "verbose_json", "--timestamps", "word", *args))
    got = [(w["word"], w["start"], w["end"]) for w in out["words"]]
    return compare(case, got, truth, len(gw.answered))


def utterance_case(path: Path, truth: list[Burst], gw: FakeGateway) -> Row:
    """Cue = phrase: compare each cue's edges with its phrase's first and last burst."""
    gw.reset()
    cues = list(
        srt.parse(run_cli(path, gw, "-f", "srt", "-m", "gpt-4o-mini-transcribe", "-j", "8"))
    )
    got = [(c.content, c.start.total_seconds(), c.end.total_seconds()) for c in cues]
    phrase_truth = [Burst(p.start, p.end, p.text) for p in phrases(truth)]
    return compare("no-timestamp model, utterance cues", got, phrase_truth, len(gw.answered))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 10 minute input")
    args = parser.parse_args()
    seconds = 600.0 if args.quick else 3600.0
    rows = []
    with FakeGateway(api_key=KEY) as gw, tempfile.TemporaryDirectory() as tmp:
        path = make_input(seconds)
        truth = schedule(seconds, seed=SEED)
        nonstop_truth = continuous_schedule(seconds / 4, seed=SEED)
        nonstop = Path(tmp) / "nonstop.flac"
        write_recording(nonstop, nonstop_truth, seconds / 4, seed=SEED)
        rows.append(
            word_case("split by size, cut in silences", path, truth, gw, "--upload-cap-mb", "8")
        )
        rows.append(word_case("forced 60 s chunks", path, truth, gw, "--chunk-seconds", "60"))
        rows.append(word_case("no silence: quietest point + 2 s overlap", nonstop, nonstop_truth,
                              gw, "--chunk-seconds", "60"))  # fmt: skip
        rows.append(utterance_case(path, truth, gw))
    title = f"{path.name} ({seconds / 60:.0f} min) and {seconds / 240:.0f} min without silences"
    print(f"\nsttcli timestamp accuracy: {title}; truth from tests/audiogen.py\n")
    print("| case | requests | words/cues | lost | extra | max error ms | mean error ms |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        cells = (
            r.case,
            r.requests,
            r.words,
            r.lost,
            r.extra,
            f"{r.max_ms:.1f}",
            f"{r.mean_ms:.1f}",
        )
        print("| " + " | ".join(map(str, cells)) + " |")
    flags = " --quick" if args.quick else ""
    print(f"\nbench: .venv/bin/python bench/accuracy.py{flags}  (inputs in bench/out/)")
    if any(r.lost or r.extra for r in rows):
        sys.exit("FAIL: words lost or duplicated")


if __name__ == "__main__":
    main()
