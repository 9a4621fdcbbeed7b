"""Chunk planning and cutting on real generated recordings (real ffmpeg, no network)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))  # until conftest puts tests/ on the path

from audiogen import Burst, continuous_schedule, schedule, write_recording
from sttcli import pcm
from sttcli.chunking import Chunk, SplitPlan, cut_chunks, plan_split
from sttcli.errors import ConfigError, InputError, UsageError
from sttcli.media import MediaInfo, probe
from sttcli.pcm import CODECS, RATE
from sttcli.utterances import cut_utterances

LIMIT = 24_000_000
ONSET_TOLERANCE = 0.005


# ------------------------------------------------------------------------- helpers


def fake_info(
    duration: float, size: int, *, upload_ext: str | None = "mp3", codec: str = "mp3"
) -> MediaInfo:
    return MediaInfo(
        path=Path("talk.mp3"),
        size=size,
        container="mp3",
        codec=codec,
        duration=duration,
        sample_rate=44100,
        channels=2,
        bit_rate=128_000,
        has_video=False,
        upload_ext=upload_ext,
    )


def decode(path: Path) -> np.ndarray:
    """A file decoded by ffmpeg to 16 kHz mono floats in [-1, 1)."""
    cmd = ["ffmpeg", "-v", "error", "-i", str(path), "-ac", "1", "-ar", str(RATE)]
    out = subprocess.run([*cmd, "-f", "s16le", "pipe:1"], capture_output=True, check=True).stdout
    return np.frombuffer(out, "<i2").astype(np.float64) / 32768.0


def onset_errors(chunk: Chunk, bursts: Sequence[Burst], audio: np.ndarray) -> list[float]:
    """For each burst wholly inside the chunk: (measured onset in the decoded chunk) -
    (onset predicted from chunk.start and the burst's true position), in seconds."""
    errors = []
    for burst in bursts:
        if burst.start < chunk.start + 0.03 or burst.end > chunk.end - 0.01:
            continue
        expected = (burst.start - chunk.start) * RATE
        lo = max(0, round(expected - 0.02 * RATE))
        window = np.abs(audio[lo : round(expected + 0.02 * RATE)])
        loud = np.flatnonzero(window > 0.03)
        assert loud.size, f"no burst found near {burst.start:.3f} s in {chunk.filename}"
        errors.append((lo + loud[0] - expected) / RATE)
    return errors


def in_burst(t: float, bursts: Sequence[Burst], margin: float = 0.0) -> bool:
    return any(b.start - margin < t < b.end + margin for b in bursts)


def phrases_of(bursts: Sequence[Burst], pause: float = 0.5) -> list[tuple[float, float]]:
    """Group bursts separated by less than `pause` into (start, end) phrases."""
    phrases: list[list[float]] = []
    for burst in bursts:
        if phrases and burst.start - phrases[-1][1] < pause:
            phrases[-1][1] = burst.end
        else:
            phrases.append([burst.start, burst.end])
    return [(a, b) for a, b in phrases]


def children() -> set[int]:
    """Pids of this process's live children (Linux)."""
    pids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        text = (task / "children").read_text()
        pids.update(int(pid) for pid in text.split())
    return pids


def check_tiling(
    chunks: Sequence[Chunk], plan: SplitPlan, duration: float, tolerance: float = 0.002
) -> None:
    assert chunks[0].start == 0.0
    assert chunks[-1].end == pytest.approx(duration, abs=tolerance)
    for k, chunk in enumerate(chunks):
        assert chunk.index == k
        assert chunk.path.exists() and chunk.size == chunk.path.stat().st_size
        assert chunk.size <= plan.max_bytes
        assert chunk.duration <= plan.max_seconds + 1e-9
        assert chunk.filename == chunk.path.name
        assert chunk.path.suffix == "." + CODECS[plan.codec].ext
        if k == 0:
            continue
        before = chunks[k - 1]
        assert chunk.overlap_before == pytest.approx(before.end - chunk.start, abs=1e-9)
        if chunk.cut_in_silence:
            assert chunk.start == before.end and chunk.overlap_before == 0.0
        else:
            assert chunk.overlap_before == pytest.approx(plan.overlap, abs=1e-3)


@pytest.fixture(scope="module")
def speech300(tmp_path_factory: pytest.TempPathFactory) -> tuple[MediaInfo, list[Burst]]:
    bursts = schedule(300.0, seed=3)
    path = write_recording(tmp_path_factory.mktemp("s") / "speech.flac", bursts, 300.0, seed=3)
    return probe(path), bursts


@pytest.fixture(scope="module")
def continuous300(tmp_path_factory: pytest.TempPathFactory) -> tuple[MediaInfo, list[Burst]]:
    bursts = continuous_schedule(300.0, seed=4)
    path = write_recording(tmp_path_factory.mktemp("c") / "fast.flac", bursts, 300.0, seed=4)
    return probe(path), bursts


# -------------------------------------------------------------------------- plan


def test_plan_none_when_one_upload_suffices() -> None:
    info = fake_info(600.0, 9_600_000)
    assert plan_split(info, max_upload_bytes=LIMIT, duration_cap=None, chunk_seconds=None) is None
    assert plan_split(info, max_upload_bytes=LIMIT, duration_cap=1400, chunk_seconds=600) is None
    assert plan_split(info, max_upload_bytes=LIMIT, duration_cap=None, chunk_seconds=900) is None


def test_plan_over_size_bounds_chunks_by_flac_worst_case() -> None:
    info = fake_info(10_800.0, 264_600_000)
    plan = plan_split(info, max_upload_bytes=LIMIT, duration_cap=None, chunk_seconds=None)
    assert plan is not None
    assert plan.reasons == ("264.6 MB is over the 24.0 MB upload limit",)
    assert plan.codec == "flac" and plan.max_bytes == LIMIT
    # Even incompressible audio at 16 kHz mono s16 stays under the limit.
    assert plan.max_seconds * CODECS["flac"].worst_bytes_per_second + 65_536 <= LIMIT
    assert plan.max_seconds > 700
    assert plan.chunks == math.ceil(10_800 / (0.9 * plan.max_seconds))
    assert plan.target_seconds * plan.chunks == pytest.approx(10_800)
    assert plan.target_seconds <= 0.9 * plan.max_seconds


def test_plan_duration_cap_and_model_name() -> None:
    info = fake_info(1800.0, 7_200_000)
    plan = plan_split(
        info, max_upload_bytes=50_000_000, duration_cap=1400, chunk_seconds=None,
        model="gpt-4o-transcribe",
    )  # fmt: skip
    assert plan is not None
    assert plan.reasons == ("1800 s is over gpt-4o-transcribe's 1400 s limit",)
    assert plan.max_seconds == pytest.approx(0.95 * 1400)
    assert plan.chunks == 2 and plan.target_seconds == pytest.approx(900)
    # With the 24 MB limit, FLAC's worst case bounds chunks tighter than the cap.
    tighter = plan_split(info, max_upload_bytes=LIMIT, duration_cap=1400, chunk_seconds=None)
    assert tighter is not None and tighter.max_seconds < 750 and tighter.chunks == 3
    unnamed = plan_split(info, max_upload_bytes=LIMIT, duration_cap=1400, chunk_seconds=None)
    assert unnamed is not None and "the model's 1400 s limit" in unnamed.reasons[0]


def test_plan_chunk_seconds_and_balance() -> None:
    info = fake_info(620.0, 9_920_000)
    plan = plan_split(info, max_upload_bytes=LIMIT, duration_cap=None, chunk_seconds=60)
    assert plan is not None
    assert plan.reasons == ("--chunk-seconds 60",)
    assert plan.max_seconds == 60
    assert plan.chunks == 12 and plan.target_seconds == pytest.approx(620 / 12)
    assert plan.overlap == 2.0


def test_plan_all_reasons_and_mp3_codec() -> None:
    info = fake_info(3000.0, 48_000_000)
    plan = plan_split(
        info, max_upload_bytes=LIMIT, duration_cap=1400, chunk_seconds=300, codec="mp3"
    )
    assert plan is not None and len(plan.reasons) == 3
    assert plan.codec == "mp3" and plan.max_seconds == 300


def test_plan_counts_conversion_growth() -> None:
    # A 20 MB wma decodes to far more than 24 MB of PCM: it must be split, not converted.
    info = fake_info(1200.0, 20_000_000, upload_ext=None, codec="wmav2")
    plan = plan_split(info, max_upload_bytes=LIMIT, duration_cap=None, chunk_seconds=None)
    assert plan is not None and "after conversion" in plan.reasons[0]


def test_plan_rejects_bad_settings() -> None:
    info = fake_info(600.0, 30_000_000)
    with pytest.raises(UsageError):
        plan_split(info, max_upload_bytes=LIMIT, duration_cap=None, chunk_seconds=1)
    with pytest.raises(UsageError):
        plan_split(info, max_upload_bytes=LIMIT, duration_cap=None, chunk_seconds=None, codec="x")
    with pytest.raises(ConfigError):
        plan_split(info, max_upload_bytes=100_000, duration_cap=None, chunk_seconds=None)


# ------------------------------------------------------------------------ chunks


def test_cuts_land_in_pauses(speech300: tuple[MediaInfo, list[Burst]], tmp_path: Path) -> None:
    info, bursts = speech300
    plan = plan_split(info, max_upload_bytes=LIMIT, duration_cap=None, chunk_seconds=60)
    assert plan is not None
    chunks = list(cut_chunks(info, plan, tmp_path))
    assert len(chunks) == plan.chunks
    check_tiling(chunks, plan, 300.0)
    for chunk in chunks[1:]:
        assert chunk.cut_in_silence and chunk.overlap_before == 0.0
        assert not in_burst(chunk.start, bursts, margin=0.1), chunk
    # Balanced: every chunk within the search window of the target length.
    for chunk in chunks[:-1]:
        assert abs(chunk.duration - plan.target_seconds) <= 0.15 * plan.target_seconds + 1


@pytest.mark.parametrize("codec", ["flac", "mp3"])
def test_chunk_starts_are_sample_exact(
    speech300: tuple[MediaInfo, list[Burst]], tmp_path: Path, codec: str
) -> None:
    info, bursts = speech300
    plan = plan_split(
        info, max_upload_bytes=LIMIT, duration_cap=None, chunk_seconds=70, codec=codec
    )
    assert plan is not None
    chunks = list(cut_chunks(info, plan, tmp_path))
    check_tiling(chunks, plan, 300.0)
    for chunk in chunks:
        audio = decode(chunk.path)
        assert len(audio) / RATE == pytest.approx(chunk.duration, abs=0.002)
        errors = onset_errors(chunk, bursts, audio)
        assert len(errors) > 20
        assert max(map(abs, errors)) < ONSET_TOLERANCE, (chunk.filename, max(errors))


def test_no_pause_falls_back_to_quietest_point_with_overlap(
    continuous300: tuple[MediaInfo, list[Burst]], tmp_path: Path
) -> None:
    info, bursts = continuous300
    plan = plan_split(info, max_upload_bytes=LIMIT, duration_cap=None, chunk_seconds=60)
    assert plan is not None
    chunks = list(cut_chunks(info, plan, tmp_path))
    check_tiling(chunks, plan, 300.0)
    assert len(chunks) >= 6
    for chunk in chunks[1:]:
        assert not chunk.cut_in_silence
        assert chunk.overlap_before == pytest.approx(2.0, abs=1e-3)
        cut = chunk.start + chunk.overlap_before / 2
        assert not in_burst(cut, bursts), f"cut at {cut:.3f} is inside a word"
    for chunk in chunks:
        errors = onset_errors(chunk, bursts, decode(chunk.path))
        assert max(map(abs, errors)) < ONSET_TOLERANCE


def test_compressed_stereo_input_keeps_exact_offsets(tmp_path: Path) -> None:
    bursts = schedule(150.0, seed=5)
    path = write_recording(
        tmp_path / "talk.mp3", bursts, 150.0, rate=44100, channels=2,
        codec_args=["-c:a", "libmp3lame", "-b:a", "128k"], seed=5,
    )  # fmt: skip
    info = probe(path)
    plan = plan_split(info, max_upload_bytes=LIMIT, duration_cap=None, chunk_seconds=40)
    assert plan is not None
    chunks = list(cut_chunks(info, plan, tmp_path / "chunks"))
    check_tiling(chunks, plan, 150.0, tolerance=0.06)  # ffprobe guesses 150.05 s
    for chunk in chunks:
        errors = onset_errors(chunk, bursts, decode(chunk.path))
        assert max(map(abs, errors)) < ONSET_TOLERANCE


def test_oversized_chunk_is_split_again(
    speech300: tuple[MediaInfo, list[Burst]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pretend FLAC were far more compact than it is: the planned chunks come out too big
    # and must be re-cut, exactly, until each fits.
    info, bursts = speech300
    optimistic = replace(CODECS["flac"], worst_bytes_per_second=4_000)
    monkeypatch.setitem(pcm.CODECS, "flac", optimistic)
    plan = plan_split(info, max_upload_bytes=600_000, duration_cap=None, chunk_seconds=None)
    assert plan is not None and plan.max_seconds > 100
    chunks = list(cut_chunks(info, plan, tmp_path))
    assert len(chunks) > plan.chunks
    check_tiling(chunks, plan, 300.0)
    for chunk in chunks:
        assert max(map(abs, onset_errors(chunk, bursts, decode(chunk.path)))) < ONSET_TOLERANCE


def test_closing_early_reaps_ffmpeg(
    speech300: tuple[MediaInfo, list[Burst]], tmp_path: Path
) -> None:
    info, _ = speech300
    plan = plan_split(info, max_upload_bytes=LIMIT, duration_cap=None, chunk_seconds=30)
    assert plan is not None
    before = children()
    chunks = cut_chunks(info, plan, tmp_path)
    first = next(chunks)
    assert first.index == 0
    assert children() - before  # the decoder (and next encoder) are running
    chunks.close()
    assert children() - before == set()


def test_undecodable_input_is_one_line_input_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.mp3"
    bogus.write_text("not audio at all\n" * 100)
    info = replace(fake_info(600.0, 30_000_000), path=bogus)
    plan = plan_split(info, max_upload_bytes=LIMIT, duration_cap=None, chunk_seconds=None)
    assert plan is not None
    before = children()
    with pytest.raises(InputError) as caught:
        list(cut_chunks(info, plan, tmp_path / "out"))
    assert caught.value.file == str(bogus)
    assert "decoding failed" in caught.value.cause and "\n" not in caught.value.one_line()
    assert children() - before == set()


@pytest.mark.slow
def test_long_recording_streams_in_reasonable_time(tmp_path: Path) -> None:
    duration = 25 * 60.0
    bursts = schedule(duration, seed=6)
    info = probe(write_recording(tmp_path / "long.flac", bursts, duration, seed=6))
    plan = plan_split(info, max_upload_bytes=LIMIT, duration_cap=300, chunk_seconds=None)
    assert plan is not None
    started = time.perf_counter()
    chunks = list(cut_chunks(info, plan, tmp_path / "chunks"))
    elapsed = time.perf_counter() - started
    check_tiling(chunks, plan, duration)
    assert all(c.cut_in_silence for c in chunks)
    assert elapsed < 60, elapsed
    # Drift check on the last chunk: its offset is exact after 25 minutes of samples.
    last = chunks[-1]
    assert max(map(abs, onset_errors(last, bursts, decode(last.path)))) < ONSET_TOLERANCE


# -------------------------------------------------------------------- utterances


def check_pieces(pieces: Sequence[Chunk], max_seconds: float) -> None:
    for k, piece in enumerate(pieces):
        assert piece.index == k
        assert piece.speech_start is not None and piece.speech_end is not None
        assert piece.start <= piece.speech_start < piece.speech_end <= piece.end
        assert piece.duration <= max_seconds + 1e-9
        assert piece.path.exists() and piece.size == piece.path.stat().st_size
        assert piece.overlap_before == 0.0
        if k:
            assert piece.start >= pieces[k - 1].end


def matched(value: float, truths: Sequence[float], tolerance: float = 0.03) -> bool:
    return min(abs(value - t) for t in truths) <= tolerance


def test_utterances_follow_phrases(tmp_path: Path) -> None:
    duration = 150.0
    bursts = schedule(duration, seed=7)
    # A minute of silence in the middle: no piece may come from it.
    late = [replace(b, start=b.start + 60, end=b.end + 60) for b in bursts if b.start > 75]
    bursts = [b for b in bursts if b.end < 74] + late
    path = write_recording(tmp_path / "talk.flac", bursts, duration + 60, seed=7)
    pieces = list(cut_utterances(probe(path), tmp_path / "u"))
    check_pieces(pieces, 30.0)
    phrases = phrases_of(bursts)
    starts = [a for a, _ in phrases]
    ends = [b for _, b in phrases]
    for piece in pieces:
        assert piece.speech_start is not None and piece.speech_end is not None
        assert matched(piece.speech_start, starts), piece
        assert matched(piece.speech_end, ends), piece
        assert piece.cut_in_silence
        assert not 75 < piece.start < 134 and not 75 < piece.end < 134
    # Every word is in exactly one piece's speech span.
    for burst in bursts:
        holders = [
            p for p in pieces
            if p.speech_start is not None and p.speech_end is not None
            and p.speech_start - 0.03 <= burst.start and burst.end <= p.speech_end + 0.03
        ]  # fmt: skip
        assert len(holders) == 1, burst
    # Offsets of the piece files are exact, like chunks.
    for piece in pieces[:10]:
        assert max(map(abs, onset_errors(piece, bursts, decode(piece.path)))) < ONSET_TOLERANCE


def test_long_phrases_are_cut_between_words(tmp_path: Path) -> None:
    duration = 90.0
    bursts = continuous_schedule(duration, seed=8)
    path = write_recording(tmp_path / "fast.flac", bursts, duration, seed=8)
    pieces = list(cut_utterances(probe(path), tmp_path / "u", max_seconds=20.0, codec="flac"))
    check_pieces(pieces, 20.0)
    assert len(pieces) >= 5
    assert all(p.filename.endswith(".flac") for p in pieces)
    for burst in bursts:  # no word is cut in two
        assert any(p.start <= burst.start and burst.end <= p.end for p in pieces), burst
    for piece in pieces:
        assert max(map(abs, onset_errors(piece, bursts, decode(piece.path)))) < ONSET_TOLERANCE


def test_short_phrases_are_padded_to_min_seconds(tmp_path: Path) -> None:
    bursts = [Burst(2.0, 2.3, "alpha"), Burst(6.0, 6.2, "bravo"), Burst(6.35, 6.6, "kilo")]
    path = write_recording(tmp_path / "short.wav", bursts, 10.0)
    pieces = list(cut_utterances(probe(path), tmp_path / "u", min_seconds=1.5))
    assert [(p.speech_start, p.speech_end) for p in pieces] == [
        pytest.approx((2.0, 2.3), abs=0.01),
        pytest.approx((6.0, 6.6), abs=0.01),
    ]
    assert all(p.duration == pytest.approx(1.5, abs=0.001) for p in pieces)


@pytest.mark.slow
def test_long_recording_utterances_in_reasonable_time(tmp_path: Path) -> None:
    duration = 20 * 60.0
    bursts = schedule(duration, seed=9)
    info = probe(write_recording(tmp_path / "long.flac", bursts, duration, seed=9))
    started = time.perf_counter()
    pieces = list(cut_utterances(info, tmp_path / "u"))
    elapsed = time.perf_counter() - started
    check_pieces(pieces, 30.0)
    assert len(pieces) == len(phrases_of(bursts))
    assert elapsed < 60, elapsed


@settings(max_examples=200, deadline=None)
@given(
    duration=st.floats(1.0, 50_000.0),
    size=st.integers(1, 2_000_000_000),
    cap=st.one_of(st.none(), st.floats(30.0, 3000.0)),
    chunk_seconds=st.one_of(st.none(), st.floats(5.0, 4000.0)),
    codec=st.sampled_from(sorted(CODECS)),
)
def test_plan_invariants(
    duration: float, size: int, cap: float | None, chunk_seconds: float | None, codec: str
) -> None:
    info = fake_info(duration, size)
    plan = plan_split(
        info, max_upload_bytes=LIMIT, duration_cap=cap, chunk_seconds=chunk_seconds, codec=codec
    )
    needed = (
        size > LIMIT
        or (cap is not None and duration > cap)
        or (chunk_seconds is not None and chunk_seconds < duration)
    )
    assert (plan is not None) == needed
    if plan is None:
        return
    assert plan.max_seconds * CODECS[codec].worst_bytes_per_second < LIMIT
    if cap is not None:
        assert plan.max_seconds <= 0.95 * cap
    if chunk_seconds is not None:
        assert plan.max_seconds <= chunk_seconds
    assert plan.chunks == math.ceil(duration / (0.9 * plan.max_seconds))
    assert plan.target_seconds * plan.chunks == pytest.approx(duration)
    assert plan.target_seconds <= 0.9 * plan.max_seconds + 1e-9
    assert 0 <= plan.overlap <= plan.max_seconds / 4
