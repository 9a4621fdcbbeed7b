"""Where to cut a recording, and producing the chunk files.

One ffmpeg process decodes the input to 16 kHz mono s16 on a pipe; Python reads it block
by block, keeps only a window of audio around the next cut point, and streams everything
before it into the current chunk's encoder (another ffmpeg reading PCM on stdin). Peak
memory is therefore flat in the recording's length.

Cut points are chosen on the decoded audio with pydub's silence detection (see pcm.py).
Offsets come from sample counts: `Chunk.start` is exact to one sample.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sttcli.errors import ConfigError, UsageError
from sttcli.media import MediaInfo, estimated_upload_bytes
from sttcli.pcm import (
    CODECS,
    FRAME_SAMPLES,
    RATE,
    SAMPLE_BYTES,
    Decoder,
    Encoder,
    PcmBuffer,
    choose_cut,
    decode_file,
    encode_pcm,
)

# Planning.
HEADER_ALLOWANCE = 65_536  # container headers, padding, tags
CAP_FRACTION = 0.95  # stay under a model's duration cap by 5 %
TARGET_FILL = 0.9  # aim chunks at 90 % of the bound, leaving room to find a pause
WINDOW_MAX = 20.0  # search a pause at most this far either side of the ideal cut...
WINDOW_FRACTION = 0.15  # ...and at most this fraction of the chunk length
MIN_CHUNK_SECONDS = 5.0


@dataclass(frozen=True)
class Chunk:
    index: int
    path: Path
    start: float  # exact seconds in the original (start_sample / 16000)
    end: float
    size: int  # bytes of the encoded file
    filename: str
    speech_start: float | None = None  # utterances: where sound begins (original timeline)
    speech_end: float | None = None
    overlap_before: float = 0.0  # seconds shared with the previous chunk
    cut_in_silence: bool = True  # the cut that starts this chunk fell in a pause

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class SplitPlan:
    reasons: tuple[str, ...]
    target_seconds: float
    max_seconds: float  # hard bound on every chunk's length, overlap included
    codec: str
    chunks: int  # estimated number of chunks
    overlap: float  # seconds shared by neighbours when a cut finds no pause
    max_bytes: int  # every chunk file must stay at or under this size


# ----------------------------------------------------------------------------- plan


def plan_split(
    info: MediaInfo,
    *,
    max_upload_bytes: int,
    duration_cap: float | None,
    chunk_seconds: float | None,
    codec: str = "flac",
    overlap: float = 2.0,
    model: str | None = None,
) -> SplitPlan | None:
    """None when the original can go up in one request; otherwise how to split it."""
    if codec not in CODECS:
        raise UsageError(f"unknown chunk codec {codec!r}", hint=f"use one of {', '.join(CODECS)}")
    if chunk_seconds is not None and chunk_seconds < MIN_CHUNK_SECONDS:
        raise UsageError(f"--chunk-seconds must be at least {MIN_CHUNK_SECONDS:g}")
    reasons = _split_reasons(info, max_upload_bytes, duration_cap, chunk_seconds, model)
    if not reasons:
        return None
    bounds = [(max_upload_bytes - HEADER_ALLOWANCE) / CODECS[codec].worst_bytes_per_second]
    if duration_cap is not None:
        bounds.append(CAP_FRACTION * duration_cap)
    if chunk_seconds is not None:
        bounds.append(chunk_seconds)
    max_seconds = float(min(bounds))
    if max_seconds < MIN_CHUNK_SECONDS:
        raise ConfigError(
            f"an upload limit of {max_upload_bytes} bytes leaves chunks under"
            f" {MIN_CHUNK_SECONDS:g} s",
            hint="raise the profile's upload cap",
        )
    count = math.ceil(info.duration / (TARGET_FILL * max_seconds))
    overlap = max(0.0, min(overlap, max_seconds / 4))
    return SplitPlan(
        reasons=tuple(reasons),
        target_seconds=info.duration / count,
        max_seconds=max_seconds,
        codec=codec,
        chunks=count,
        overlap=overlap,
        max_bytes=max_upload_bytes,
    )


def _split_reasons(
    info: MediaInfo,
    max_upload_bytes: int,
    duration_cap: float | None,
    chunk_seconds: float | None,
    model: str | None,
) -> list[str]:
    reasons = []
    size = estimated_upload_bytes(info)
    if size > max_upload_bytes:
        after = "" if info.upload_ext else " after conversion"
        reasons.append(
            f"{size / 1e6:.1f} MB{after} is over the {max_upload_bytes / 1e6:.1f} MB upload limit"
        )
    if duration_cap is not None and info.duration > duration_cap:
        whose = f"{model}'s" if model else "the model's"
        reasons.append(f"{info.duration:.0f} s is over {whose} {duration_cap:g} s limit")
    if chunk_seconds is not None and chunk_seconds < info.duration:
        reasons.append(f"--chunk-seconds {chunk_seconds:g}")
    return reasons


# --------------------------------------------------------------------------- chunks


def cut_chunks(
    info: MediaInfo, plan: SplitPlan, workdir: Path, stop: threading.Event | None = None
) -> Iterator[Chunk]:
    """Decode `info` once and yield its chunks, each as soon as its file is complete.

    To overlap encoding with uploads, drive this from a worker thread (for example
    `await asyncio.to_thread(next, chunks, None)`). Closing the iterator early stops and
    reaps every ffmpeg process it started."""
    workdir.mkdir(parents=True, exist_ok=True)
    cutter = _ChunkCutter(info, plan, workdir, stop)
    try:
        yield from cutter.run()
    finally:
        cutter.close()


class _ChunkCutter:
    def __init__(
        self, info: MediaInfo, plan: SplitPlan, workdir: Path, stop: threading.Event | None
    ) -> None:
        self.info = info
        self.stop = stop
        self.plan = plan
        self.codec = CODECS[plan.codec]
        self.workdir = workdir
        self.stem = info.path.stem or "audio"
        self.max_samples = int(plan.max_seconds * RATE)
        self.half = int(plan.overlap * RATE / 2)
        self.total_estimate = round(info.duration * RATE)
        self.buf = PcmBuffer()
        self.index = 0
        self.fed = 0  # the current encoder has every sample before this one
        self.decoder: Decoder | None = None
        self.encoder: Encoder | None = None

    def close(self) -> None:
        if self.encoder is not None:
            self.encoder.close()
            self.encoder = None
        if self.decoder is not None:
            self.decoder.close()
            self.decoder = None

    def run(self) -> Iterator[Chunk]:
        self.decoder = Decoder(self.info.path, self.stop)
        start, base, overlap, silent = 0, 0, 0, True
        while True:
            self._open(start)
            lo, hi, ideal = self._window(start, base)
            need = hi + self.half
            if self.total_estimate <= start + self.max_samples:
                need = start + self.max_samples + 1  # enough to see whether the stream ends
            self._fill(need, feed_until=lo, keep_from=lo - self.half)
            if self.decoder.eof and self.buf.end - start <= self.max_samples:
                end = self.buf.end
                self._feed(end)
                yield from self._finish(start, end, overlap, silent)
                return
            at, in_pause = choose_cut(self.buf.slice(lo, hi), ideal - lo)
            cut = lo + at
            reach = 0 if in_pause else self.half
            end = min(cut + reach, self.buf.end)
            self._feed(end)
            yield from self._finish(start, end, overlap, silent)
            start, base, silent = cut - reach, cut, in_pause
            overlap = end - start

    def _window(self, start: int, base: int) -> tuple[int, int, int]:
        """Where to look for the cut ending the chunk that begins at `start` (the last cut
        was at `base`): balanced over what remains, never making a chunk too long."""
        hard_hi = start + self.max_samples - self.half
        target = self.plan.target_seconds * RATE
        if self.total_estimate <= start + self.max_samples:
            # Expected to be the last chunk; this window only matters if the stream runs
            # longer than ffprobe said.
            reach = int(min(WINDOW_MAX * RATE, WINDOW_FRACTION * target))
            return hard_hi - 2 * reach, hard_hi, hard_hi - reach
        remaining = self.total_estimate - base
        parts = max(2, math.ceil(remaining / (TARGET_FILL * self.max_samples)))
        piece = remaining / parts
        ideal = base + round(piece)
        reach = int(min(WINDOW_MAX * RATE, WINDOW_FRACTION * piece))
        hi = min(ideal + reach, hard_hi)
        lo = min(max(ideal - reach, base + RATE // 2), hi - FRAME_SAMPLES)
        return lo, hi, min(max(ideal, lo), hi)

    def _path(self, index: int) -> Path:
        return self.workdir / f"{self.stem}-{index:03d}.{self.codec.ext}"

    def _open(self, start: int) -> None:
        self.encoder = Encoder(self._path(self.index), self.codec)
        self.fed = start

    def _feed(self, upto: int) -> None:
        assert self.encoder is not None
        if upto > self.fed:
            with self.buf.view(self.fed, upto) as view:
                self.encoder.write(view)
            self.fed = upto

    def _fill(self, need: int, *, feed_until: int, keep_from: int) -> None:
        """Read until the buffer reaches `need`, streaming what precedes `feed_until` into
        the encoder and forgetting what precedes `keep_from` once it is encoded."""
        assert self.decoder is not None
        self._feed(min(self.buf.end, feed_until))
        while self.buf.end < need:
            block = self.decoder.read()
            if not block:
                break
            self.buf.append(block)
            self._feed(min(self.buf.end, feed_until))
            self.buf.drop_before(min(self.fed, keep_from))

    def _finish(self, start: int, end: int, overlap: int, silent: bool) -> Iterator[Chunk]:
        assert self.encoder is not None
        path = self.encoder.path
        size = self.encoder.finish()
        self.encoder = None
        if size <= self.plan.max_bytes:
            yield self._chunk(path, start, end, size, overlap, silent)
            return
        pcm = decode_file(path)  # bounded: one chunk of at most max_seconds
        path.unlink()
        yield from self._split_again(pcm, start, overlap, silent, size)

    def _split_again(
        self, pcm: bytes, start: int, overlap: int, silent: bool, size: int
    ) -> Iterator[Chunk]:
        """Re-cut an oversized chunk (exactly: FLAC is lossless) into as many parts as its
        size says, each at the best point near its share; recurse if one is still over."""
        samples = len(pcm) // SAMPLE_BYTES
        parts = max(2, math.ceil(size / (TARGET_FILL * self.plan.max_bytes)))
        edges = [(0, 0, overlap, silent)]  # (start, end-extension, overlap, silent)
        for k in range(1, parts):
            ideal = k * samples // parts
            reach = samples // parts // 4
            at, in_pause = choose_cut(pcm[(ideal - reach) * 2 : (ideal + reach) * 2], reach)
            cut = ideal - reach + at
            half = 0 if in_pause else min(self.half, reach)
            edges.append((cut - half, cut + half, 2 * half, in_pause))
        edges.append((samples, samples, 0, True))
        for (lo, _, lap, quiet), (_, hi, _, _) in itertools.pairwise(edges):
            piece = pcm[lo * 2 : hi * 2]
            path = self._path(self.index)
            piece_size = encode_pcm(piece, path, self.codec)
            if piece_size <= self.plan.max_bytes or hi - lo < 4 * RATE:
                yield self._chunk(path, start + lo, start + hi, piece_size, lap, quiet)
            else:
                path.unlink()
                yield from self._split_again(piece, start + lo, lap, quiet, piece_size)

    def _chunk(
        self, path: Path, start: int, end: int, size: int, overlap: int, silent: bool
    ) -> Chunk:
        final = self._path(self.index)
        if path != final:
            path.rename(final)
        chunk = Chunk(
            index=self.index,
            path=final,
            start=start / RATE,
            end=end / RATE,
            size=size,
            filename=final.name,
            overlap_before=overlap / RATE,
            cut_in_silence=silent,
        )
        self.index += 1
        return chunk
