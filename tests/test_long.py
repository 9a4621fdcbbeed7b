"""Long recordings end to end through the test gateway: split, uploaded concurrently,
stitched, and every time checked against where the speech really is.

These generate 30+ minute recordings and take minutes; they run in CI.
Deselect them locally with -m "not slow".
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

import audiogen
from audiogen import Burst
from checks import (
    Cue,
    assert_cues_match,
    assert_ordered,
    assert_words_match,
    parse_srt,
    parse_verbose,
    parse_vtt,
    phrases,
)
from conftest import API_KEY, CLI
from gateway import DEFAULT_MODELS, FakeGateway

pytestmark = pytest.mark.slow

Run = Callable[..., subprocess.CompletedProcess[str]]
TOLERANCE = 0.05  # seconds, for timestamped models
UTTERANCE_TOLERANCE = 0.1  # seconds, for cues timed from the audio (json/text-only models)
MP3_128K = ["-c:a", "libmp3lame", "-b:a", "128k"]


@dataclass(frozen=True)
class Recording:
    path: Path
    bursts: list[Burst]
    duration: float


def make_recording(
    path: Path, minutes: float, *, seed: int, continuous: bool = False, **kwargs: object
) -> Recording:
    duration = minutes * 60
    schedule = audiogen.continuous_schedule if continuous else audiogen.schedule
    bursts = schedule(duration, seed=seed)
    audiogen.write_recording(path, bursts, duration, seed=seed, **kwargs)  # type: ignore[arg-type]
    return Recording(path, bursts, duration)


@pytest.fixture(scope="session")
def long_mp3(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    """36 minutes, 44.1 kHz stereo mp3 at 128 kbps: ~34.6 MB, over the 25 and 32 MB caps."""
    path = tmp_path_factory.mktemp("long") / "podcast.mp3"
    recording = make_recording(path, 36, seed=7, rate=44100, channels=2, codec_args=MP3_128K)
    assert path.stat().st_size > 32 * 1024 * 1024
    return recording


def env(**extra: str) -> dict[str, str | None]:
    return {"STTCLI_API_KEY": API_KEY, "STTCLI_BACKOFF_BASE": "0.01", **extra}


def transcribe(run_cli: Run, rec: Recording, gw: FakeGateway, *args: str) -> str:
    result = run_cli("transcribe", rec.path, "--base-url", gw.base_url, *args, env=env(),
                     timeout=1200)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def assert_split(gw: FakeGateway, at_least: int) -> None:
    assert len(gw.answered) >= at_least, f"expected >= {at_least} requests"
    assert all(r.filename and r.filename.endswith(".flac") for r in gw.answered)


def test_over_the_25mb_cap_every_word_and_cue_is_where_its_speech_is(
    long_mp3: Recording, gateway: FakeGateway, run_cli: Run
) -> None:
    out = transcribe(run_cli, long_mp3, gateway, "-f", "verbose_json", "--timestamps",
                     "word,segment")  # fmt: skip
    assert_split(gateway, 2)
    assert all(r.file_bytes <= 25 * 1024 * 1024 for r in gateway.requests)
    segments, words = parse_verbose(out)
    assert_words_match(words, long_mp3.bursts, TOLERANCE)
    assert_cues_match(segments, phrases(long_mp3.bursts), TOLERANCE)
    gateway.reset()
    srt_cues = parse_srt(transcribe(run_cli, long_mp3, gateway, "-f", "srt"))
    assert_cues_match(srt_cues, phrases(long_mp3.bursts), TOLERANCE)


def test_32mb_cap_profile(
    long_mp3: Recording, gateway_factory: Callable[..., FakeGateway], run_cli: Run
) -> None:
    gw = gateway_factory(mode="requesty")
    result = run_cli(
        "transcribe", long_mp3.path, "-g", "requesty", "--base-url", gw.base_url, "-f", "vtt",
        env={"REQUESTY_API_KEY": API_KEY}, timeout=1200,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert_split(gw, 2)
    assert "over the 30.7 MB upload limit" in result.stderr, "the plan must use the 32 MB cap"
    assert all(r.model == "openai/whisper-1" for r in gw.requests)
    assert_cues_match(parse_vtt(result.stdout), phrases(long_mp3.bursts), TOLERANCE)


def test_forced_60_second_chunks(long_mp3: Recording, gateway: FakeGateway, run_cli: Run) -> None:
    out = transcribe(run_cli, long_mp3, gateway, "-f", "verbose_json", "--timestamps", "word",
                     "--chunk-seconds", "60", "-j", "8")  # fmt: skip
    assert_split(gateway, 30)
    assert max(r.duration or 0 for r in gateway.requests) <= 60 * 1.2
    _, words = parse_verbose(out)
    assert_words_match(words, long_mp3.bursts, TOLERANCE)


def test_model_without_timestamps_gets_cues_timed_from_the_audio(
    long_mp3: Recording, gateway: FakeGateway, run_cli: Run
) -> None:
    out = transcribe(run_cli, long_mp3, gateway, "-f", "srt", "-m", "gpt-4o-mini-transcribe",
                     "-j", "8")  # fmt: skip
    assert {r.response_format for r in gateway.requests} == {"json"}
    assert max(r.duration or 0 for r in gateway.requests) <= 31
    assert_cues_match(parse_srt(out), phrases(long_mp3.bursts), UTTERANCE_TOLERANCE)


def test_speech_without_silences_overlaps_and_dedupes_by_time(
    tmp_path: Path, gateway: FakeGateway, run_cli: Run
) -> None:
    rec = make_recording(tmp_path / "nonstop.flac", 8, seed=3, continuous=True)
    out = transcribe(run_cli, rec, gateway, "-f", "verbose_json", "--timestamps", "word",
                     "--chunk-seconds", "60")  # fmt: skip
    assert_split(gateway, 7)
    durations = sorted(r.duration or 0 for r in gateway.requests)
    assert sum(durations) > rec.duration + 5, "neighbouring chunks should overlap"
    _, words = parse_verbose(out)
    assert_words_match(words, rec.bursts, TOLERANCE)


def test_a_smaller_duration_cap_stated_by_the_endpoint_is_learnt(
    tmp_path: Path, gateway_factory: Callable[..., FakeGateway], run_cli: Run
) -> None:
    models = dict(DEFAULT_MODELS)
    models["whisper-1"] = replace(models["whisper-1"], max_seconds=300.0)
    gw = gateway_factory(models=models)
    rec = make_recording(tmp_path / "ten.flac", 10, seed=5)
    out = transcribe(run_cli, rec, gw, "-f", "srt")
    refused = [r for r in gw.requests if r.status == 400]
    assert len(refused) == 1 and all(r.duration and r.duration <= 300 for r in gw.answered)
    assert_cues_match(parse_srt(out), phrases(rec.bursts), TOLERANCE)


def test_chunks_upload_concurrently_and_faults_are_retried(
    tmp_path: Path, gateway: FakeGateway, run_cli: Run
) -> None:
    rec = make_recording(tmp_path / "twelve.flac", 12, seed=11)
    gateway.latency = 0.3
    gateway.inject(500, times=2)
    gateway.inject(429, times=1, headers={"retry-after": "0"})
    out = transcribe(run_cli, rec, gateway, "-f", "vtt", "--chunk-seconds", "60", "-j", "4")
    assert 2 <= gateway.max_in_flight <= 4
    assert len([r for r in gateway.requests if r.fault == "inject"]) == 3
    assert_cues_match(parse_vtt(out), phrases(rec.bursts), TOLERANCE)


def test_a_chunk_that_fails_for_good_fails_the_run_and_writes_nothing(
    tmp_path: Path, gateway: FakeGateway, run_cli: Run
) -> None:
    rec = make_recording(tmp_path / "six.flac", 6, seed=2)
    gateway.inject(400, times=1, when=lambda r: (r.filename or "").endswith("-002.flac"))
    target = tmp_path / "out.srt"
    result = run_cli("transcribe", rec.path, "--base-url", gateway.base_url, "-f", "srt",
                     "--chunk-seconds", "60", "-o", target, env=env())  # fmt: skip
    assert result.returncode == 5, result.stderr
    assert re.search(r"sttcli: error: .*six\.flac: chunk 3 \(", result.stderr), result.stderr
    assert not target.exists() and list(tmp_path.glob("*.part")) == []


def test_carry_prompt_sends_the_previous_text_sequentially(
    tmp_path: Path, gateway: FakeGateway, run_cli: Run
) -> None:
    rec = make_recording(tmp_path / "four.flac", 4, seed=4)
    out = transcribe(run_cli, rec, gateway, "-f", "srt", "--chunk-seconds", "60",
                     "--carry-prompt", "--prompt", "NATO alphabet.")  # fmt: skip
    requests = sorted(gateway.requests, key=lambda r: r.received)
    assert gateway.max_in_flight == 1
    assert requests[0].field("prompt") == "NATO alphabet."
    for before, after in itertools.pairwise(requests):
        heard = " ".join(w.word for w in before.words)
        prompt = after.field("prompt") or ""
        assert prompt and heard.endswith(prompt), (prompt, heard)
    assert_cues_match(parse_srt(out), phrases(rec.bursts), TOLERANCE)


def test_dry_run_shows_the_plan_and_uploads_nothing(
    long_mp3: Recording, gateway: FakeGateway, run_cli: Run
) -> None:
    result = run_cli(
        "transcribe", long_mp3.path, "--dry-run", "-f", "srt", "--base-url", gateway.base_url
    )  # fmt: skip  (no key needed for a dry run)
    assert result.returncode == 0, result.stderr
    assert gateway.requests == []
    assert "over the 24.0 MB upload limit" in result.stdout
    rows = re.findall(r"^\s+\d+\s+(\S+) – (\S+)\s+([\d,]+) bytes", result.stdout, re.M)
    assert len(rows) >= 2
    assert rows[0][0] == "00:00:00.000" and rows[-1][1] == "00:36:00.000"
    assert all(int(size.replace(",", "")) < 24_000_000 for *_, size in rows)


# --------------------------------------------------------------------------- very long inputs


# A forked child inherits its parent's peak RSS on Linux, so the CLI is started by a
# small fresh interpreter, not by this (much larger) pytest process.
LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:], stdout=open(sys.argv[1], "wb"), stdin=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def peak_rss_kib(args: list[str | Path], out: Path) -> tuple[str, int]:
    """Run the CLI to the end; its stdout and its peak RSS in KiB (from wait4)."""
    result = subprocess.run(
        [sys.executable, "-c", LAUNCHER, str(out), str(CLI), *map(str, args)],
        capture_output=True, text=True, env={**os.environ, "STTCLI_API_KEY": API_KEY},
        check=False, timeout=1800,
    )  # fmt: skip
    code, rss = map(int, result.stdout.split())
    assert code == 0, result.stderr[-3000:]
    return out.read_text(), rss


def test_25_minute_44k_stereo_wav(
    tmp_path_factory: pytest.TempPathFactory, gateway: FakeGateway
) -> None:
    path = tmp_path_factory.mktemp("wav") / "lecture.wav"
    rec = make_recording(path, 25, seed=9, rate=44100, channels=2)
    assert path.stat().st_size > 250_000_000
    out, _ = peak_rss_kib(
        ["transcribe", path, "-f", "vtt", "--base-url", gateway.base_url], path.with_suffix(".vtt")
    )
    assert_split(gateway, 2)
    assert_cues_match(parse_vtt(out), phrases(rec.bursts), TOLERANCE)
    path.unlink()


def test_3_hour_mp3_in_flat_memory(
    tmp_path_factory: pytest.TempPathFactory, gateway: FakeGateway
) -> None:
    root = tmp_path_factory.mktemp("hours")
    mp3 = ["-c:a", "libmp3lame", "-b:a", "64k"]
    short = make_recording(root / "ten.mp3", 10, seed=21, rate=22050, codec_args=mp3)
    long = make_recording(root / "three-hours.mp3", 180, seed=22, rate=22050, codec_args=mp3)
    assert long.path.stat().st_size > 80_000_000
    base = ["-f", "srt", "--base-url", gateway.base_url, "-j", "4"]
    _, short_rss = peak_rss_kib(["transcribe", short.path, *base], root / "ten.srt")
    gateway.reset()
    out, long_rss = peak_rss_kib(["transcribe", long.path, *base], root / "three-hours.srt")
    print(f"peak RSS: 10 min {short_rss / 1024:.0f} MiB, 3 h {long_rss / 1024:.0f} MiB")
    assert long_rss <= 1.5 * short_rss, f"3 h used {long_rss / short_rss:.2f}x the 10 min peak"
    assert_split(gateway, 8)
    cues = parse_srt(out)
    assert_ordered(cues)
    assert_cues_match(cues, phrases(long.bursts), TOLERANCE)
    seams = sorted(r.duration or 0 for r in gateway.requests)
    assert sum(seams) == pytest.approx(long.duration, abs=1.0), "chunks must tile the file"


def test_every_cue_is_valid_srt_and_vtt_across_seams(
    long_mp3: Recording, gateway: FakeGateway, run_cli: Run
) -> None:
    vtt = transcribe(run_cli, long_mp3, gateway, "-f", "vtt", "--chunk-seconds", "300")
    cues: list[Cue] = parse_vtt(vtt)
    assert_ordered(cues)
    assert cues[-1].end <= long_mp3.duration
    assert_cues_match(cues, phrases(long_mp3.bursts), TOLERANCE)


def test_concurrent_chunks_all_fall_back_when_verbose_json_is_refused(
    tmp_path: Path, gateway_factory: Callable[..., FakeGateway], run_cli: Run
) -> None:
    no_verbose = frozenset({"json", "text", "srt", "vtt"})
    models = {"house-whisper": replace(DEFAULT_MODELS["whisper-1"], formats=no_verbose)}
    gw = gateway_factory(models=models, latency=0.2)
    rec = make_recording(tmp_path / "five.flac", 5, seed=8)
    result = run_cli("transcribe", rec.path, "--base-url", gw.base_url, "-m", "house-whisper",
                     "-f", "srt", "--chunk-seconds", "60", "-j", "4", env=env())  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert gw.max_in_flight >= 2
    refused = [r for r in gw.requests if r.status == 400]
    assert refused and all(r.response_format == "verbose_json" for r in refused)
    assert {r.response_format for r in gw.answered} == {"srt"}
    assert_cues_match(parse_srt(result.stdout), phrases(rec.bursts), TOLERANCE)


def test_ctrl_c_exits_130_and_leaves_no_files_or_processes(
    tmp_path: Path, gateway: FakeGateway
) -> None:
    rec = make_recording(tmp_path / "eight.flac", 8, seed=12)
    gateway.latency = 1.0
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    target = tmp_path / "out.srt"
    proc = subprocess.Popen(
        [str(CLI), "transcribe", str(rec.path), "-f", "srt", "--chunk-seconds", "30",
         "-o", str(target), "--base-url", gateway.base_url],
        env={**os.environ, "STTCLI_API_KEY": API_KEY, "TMPDIR": str(scratch)},
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in a terminal
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not gateway.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gateway.requests, "the CLI never started uploading"
    children = child_pids(proc.pid)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "sttcli: interrupted" in stderr and "Traceback" not in stderr
    assert not target.exists()
    assert list(scratch.iterdir()) == [], "temporary files left behind"
    assert children, "expected ffmpeg children while chunking"
    time.sleep(0.2)
    assert [pid for pid in children if Path(f"/proc/{pid}").exists()] == []


def child_pids(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def test_mp3_chunks_keep_exact_offsets_and_send_fewer_bytes(
    tmp_path: Path, gateway: FakeGateway, run_cli: Run
) -> None:
    rec = make_recording(tmp_path / "seven.flac", 7, seed=14)
    sizes = {}
    for codec in ("flac", "mp3"):
        gateway.reset()
        out = transcribe(run_cli, rec, gateway, "-f", "verbose_json", "--timestamps", "word",
                         "--chunk-seconds", "90", "--chunk-codec", codec)  # fmt: skip
        assert {r.filename.rsplit(".", 1)[1] for r in gateway.answered if r.filename} == {codec}
        sizes[codec] = sum(r.file_bytes for r in gateway.answered)
        _, words = parse_verbose(out)
        assert_words_match(words, rec.bursts, TOLERANCE)  # LAME's encoder delay is trimmed
    assert sizes["mp3"] < sizes["flac"] / 2
