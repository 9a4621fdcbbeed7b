"""Where to cut a recording, and producing the chunk files.

One ffmpeg process decodes the input to 16 kHz mono s16 on a pipe; Python reads it block
by block, keeps only a window of audio around the next cut point, and streams everything
before it into the current chunk's encoder (another ffmpeg reading PCM on stdin). Peak
memory is therefore flat in the recording's length.

Cut points are chosen on the decoded audio with pydub's silence detection, using a
threshold relative to the loudness of the analysed window (so quiet and loud recordings
behave alike). Offsets come from sample counts: `Chunk.start` is exact to one sample.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import subprocess
import tempfile
import warnings
import wave
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from sttcli.errors import ConfigError, InputError, UsageError
from sttcli.media import MediaInfo, estimated_upload_bytes, one_line

with warnings.catch_warnings():  # audioop is deprecated in 3.11-3.12 (pydub uses it too)
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # stdlib until 3.12, the audioop-lts package from 3.13

    from pydub import AudioSegment
    from pydub.silence import detect_silence

RATE = 16000  # chunks are 16 kHz mono s16: all that Whisper-class models hear
SAMPLE_BYTES = 2
READ_BYTES = 1 << 16  # ~2 s of decoded audio per pipe read
FRAME_SAMPLES = RATE // 100  # 10 ms analysis frames
FINE_SAMPLES = RATE // 400  # 2.5 ms frames to place speech edges

# Planning.
HEADER_ALLOWANCE = 65_536  # container headers, padding, tags
CAP_FRACTION = 0.95  # stay under a model's duration cap by 5 %
TARGET_FILL = 0.9  # aim chunks at 90 % of the bound, leaving room to find a pause
WINDOW_MAX = 20.0  # search a pause at most this far either side of the ideal cut...
WINDOW_FRACTION = 0.15  # ...and at most this fraction of the chunk length
MIN_CHUNK_SECONDS = 5.0

# Silence detection, relative to the analysed window's loudness.
LEVEL_PERCENTILE = 99.0  # "speech level": the loudest 1 % of 10 ms frames
FLOOR_PERCENTILE = 10.0  # "noise floor": the quietest 10 %
SILENCE_BELOW_LEVEL_DB = 25.0  # silence is at least 25 dB under the speech level...
NOISE_MARGIN_DB = 6.0  # ...or, in noisy recordings, within 6 dB of the floor...
MIN_CONTRAST_DB = 10.0  # ...but never closer than 10 dB to the speech level
QUIET_WINDOW_DBFS = -55.0  # a window whose speech level is below this is all silence
MIN_SILENCE_MS = 300
GOOD_SILENCE_MS = 800  # pauses at least this long (or half the longest) all qualify
QUIET_TOLERANCE_DB = 3.0  # fallback: frames this close to the quietest count as quietest

# Utterances.
PAUSE_MS = 450  # a phrase ends at a silence at least this long
PAD_SECONDS = 0.25  # audio kept either side of the speech in a piece
MIN_SOUND_SECONDS = 0.08  # shorter sounds (clicks) are not speech
LOOKAHEAD_SECONDS = 12.0  # audio analysed beyond max_seconds before emitting a phrase


@dataclass(frozen=True)
class Codec:
    name: str
    ext: str
    args: tuple[str, ...]
    worst_bytes_per_second: int  # at 16 kHz mono, whatever the audio


CODECS: dict[str, Codec] = {
    # Lossless and sample-exact; white noise at full scale measures 32.3 kB/s.
    "flac": Codec("flac", "flac", ("-c:a", "flac"), 32_500),
    # For low-bandwidth uploads. ffmpeg writes a LAME header with the encoder delay, and
    # decoders that honour it (ffmpeg does) trim it: offsets stay exact (measured < 1 ms).
    "mp3": Codec("mp3", "mp3", ("-c:a", "libmp3lame", "-b:a", "32k"), 4_200),
    "wav": Codec("wav", "wav", ("-c:a", "pcm_s16le"), 32_000),
}


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


# ------------------------------------------------------------------------- analysis


def frame_levels(pcm: bytes | bytearray, frame: int = FRAME_SAMPLES) -> list[float]:
    """dBFS of each `frame`-sample frame of s16 mono PCM (digital silence: about -90)."""
    step = frame * SAMPLE_BYTES
    return [
        20 * math.log10(max(1, audioop.rms(pcm[at : at + step], SAMPLE_BYTES)) / 32768)
        for at in range(0, len(pcm) - step + 1, step)
    ]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def silence_threshold(levels: list[float]) -> float:
    """dBFS under which a stretch counts as silence, relative to the window's loudness."""
    if not levels:
        return 0.0
    level = _percentile(levels, LEVEL_PERCENTILE)
    if level < QUIET_WINDOW_DBFS:
        return level + 1.0  # nothing but quiet here: all of it is silence
    floor = _percentile(levels, FLOOR_PERCENTILE)
    noisy = min(floor + NOISE_MARGIN_DB, level - MIN_CONTRAST_DB)
    return max(level - SILENCE_BELOW_LEVEL_DB, noisy)


def find_silences(
    pcm: bytes | bytearray, threshold: float, min_ms: int = MIN_SILENCE_MS
) -> list[tuple[int, int]]:
    """Silences (sample ranges within `pcm`) of at least `min_ms`, by pydub."""
    segment = AudioSegment(data=bytes(pcm), sample_width=SAMPLE_BYTES, frame_rate=RATE, channels=1)
    found = detect_silence(segment, min_silence_len=min_ms, silence_thresh=threshold, seek_step=10)
    per_ms = RATE // 1000
    return [(int(a) * per_ms, min(len(pcm) // SAMPLE_BYTES, int(b) * per_ms)) for a, b in found]


def choose_cut(pcm: bytes | bytearray, ideal: int) -> tuple[int, bool]:
    """Where to cut `pcm` (a sample index in it) near `ideal`, and whether it is a pause.

    The middle of the longest pause nearest the ideal point; without one, the quietest
    10 ms frame nearest it."""
    levels = frame_levels(pcm)
    threshold = silence_threshold(levels)
    silences = find_silences(pcm, threshold)
    if silences:
        longest = max(b - a for a, b in silences)
        good_len = min(longest // 2, GOOD_SILENCE_MS * RATE // 1000)
        good = [(a + b) // 2 for a, b in silences if b - a >= good_len]
        return min(good, key=lambda mid: abs(mid - ideal)), True
    if not levels:
        return ideal, False
    quietest = min(levels) + QUIET_TOLERANCE_DB
    frames = [k for k, level in enumerate(levels) if level <= quietest]
    best = min(frames, key=lambda k: abs(k * FRAME_SAMPLES + FRAME_SAMPLES // 2 - ideal))
    return best * FRAME_SAMPLES + FRAME_SAMPLES // 2, False


# ------------------------------------------------------------------------ processes


def _stderr_file() -> IO[bytes]:
    return tempfile.TemporaryFile()


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    """End a child we started and reap it (no zombies), whatever state it is in."""
    if proc is None:
        return
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _error_line(handle: IO[bytes], path: Path | None = None) -> str:
    handle.seek(0)
    return one_line(handle.read()[-4096:], path)


class _Decoder:
    """ffmpeg decoding one input to s16le 16 kHz mono on a pipe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.samples = 0  # decoded so far
        self.eof = False
        self._err = _stderr_file()
        cmd = [
            "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path),
            "-map", "0:a:0", "-vn", "-sn", "-dn", "-ac", "1", "-ar", str(RATE),
            "-f", "s16le", "pipe:1",
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._err
        )

    def read(self) -> bytes:
        """The next block (whole samples), or b"" at the end of the stream."""
        if self.eof or self.proc is None or self.proc.stdout is None:
            return b""
        block = self.proc.stdout.read(READ_BYTES)
        if len(block) % SAMPLE_BYTES:
            block += self.proc.stdout.read(1)
        if not block:
            self._finish()
            return b""
        self.samples += len(block) // SAMPLE_BYTES
        return block

    def _finish(self) -> None:
        self.eof = True
        assert self.proc is not None
        code = self.proc.wait()
        self.proc = None
        if code != 0 or self.samples == 0:
            detail = _error_line(self._err, self.path) or "no audio decoded"
            where = f" at {self.samples / RATE:.1f} s" if self.samples else ""
            raise InputError(
                f"decoding failed{where} ({detail})", file=self.path, hint="the file may be corrupt"
            )

    def close(self) -> None:
        _stop(self.proc)
        self.proc = None
        self._err.close()


class _Encoder:
    """ffmpeg encoding s16le 16 kHz mono from stdin into one chunk file."""

    def __init__(self, path: Path, codec: Codec) -> None:
        self.path = path
        self._err = _stderr_file()
        cmd = [
            "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "s16le", "-ar", str(RATE), "-ac", "1", "-i", "pipe:0",
            *codec.args, str(path),
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._err
        )

    def write(self, pcm: bytes | bytearray | memoryview) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(pcm)
        except BrokenPipeError:
            self.finish()  # raises with ffmpeg's reason

    def finish(self) -> int:
        """Close the input, wait for the file; its size in bytes."""
        assert self.proc is not None
        if self.proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        code = self.proc.wait()
        self.proc = None
        if code != 0:
            raise InputError(
                f"encoding chunk {self.path.name} failed ({_error_line(self._err) or code})",
                hint="check ffmpeg's installation (libmp3lame for mp3 chunks)",
            )
        self._err.close()
        return self.path.stat().st_size

    def close(self) -> None:
        _stop(self.proc)
        self.proc = None
        self._err.close()


def encode_pcm(pcm: bytes | bytearray, path: Path, codec: Codec) -> int:
    """Encode a PCM block held in memory; the file's size."""
    if codec.name == "wav":
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(SAMPLE_BYTES)
            out.setframerate(RATE)
            out.writeframes(bytes(pcm))
        return path.stat().st_size
    encoder = _Encoder(path, codec)
    try:
        encoder.write(pcm)
        return encoder.finish()
    finally:
        encoder.close()


def decode_file(path: Path) -> bytes:
    """A (small) file decoded to s16le 16 kHz mono in memory: for re-cutting one chunk."""
    decoder = _Decoder(path)
    try:
        return b"".join(iter(decoder.read, b""))
    finally:
        decoder.close()


# --------------------------------------------------------------------------- chunks


class _Buffer:
    """Decoded samples [start, end) of the stream, kept while they may still be needed."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.start = 0

    @property
    def end(self) -> int:
        return self.start + len(self.data) // SAMPLE_BYTES

    def append(self, block: bytes) -> None:
        self.data += block

    def view(self, lo: int, hi: int) -> memoryview:
        lo = max(lo, self.start)
        hi = max(lo, min(hi, self.end))
        return memoryview(self.data)[(lo - self.start) * 2 : (hi - self.start) * 2]

    def slice(self, lo: int, hi: int) -> bytes:
        with self.view(lo, hi) as view:
            return bytes(view)

    def drop_before(self, sample: int) -> None:
        count = min(max(0, sample - self.start), len(self.data) // SAMPLE_BYTES)
        del self.data[: count * SAMPLE_BYTES]
        self.start += count


def cut_chunks(info: MediaInfo, plan: SplitPlan, workdir: Path) -> Iterator[Chunk]:
    """Decode `info` once and yield its chunks, each as soon as its file is complete.

    To overlap encoding with uploads, drive this from a worker thread (for example
    `await asyncio.to_thread(next, chunks, None)`). Closing the iterator early stops and
    reaps every ffmpeg process it started."""
    workdir.mkdir(parents=True, exist_ok=True)
    cutter = _ChunkCutter(info, plan, workdir)
    try:
        yield from cutter.run()
    finally:
        cutter.close()


class _ChunkCutter:
    def __init__(self, info: MediaInfo, plan: SplitPlan, workdir: Path) -> None:
        self.info = info
        self.plan = plan
        self.codec = CODECS[plan.codec]
        self.workdir = workdir
        self.stem = info.path.stem or "audio"
        self.max_samples = int(plan.max_seconds * RATE)
        self.half = int(plan.overlap * RATE / 2)
        self.total_estimate = round(info.duration * RATE)
        self.buf = _Buffer()
        self.index = 0
        self.fed = 0  # the current encoder has every sample before this one
        self.decoder: _Decoder | None = None
        self.encoder: _Encoder | None = None

    def close(self) -> None:
        if self.encoder is not None:
            self.encoder.close()
            self.encoder = None
        if self.decoder is not None:
            self.decoder.close()
            self.decoder = None

    def run(self) -> Iterator[Chunk]:
        self.decoder = _Decoder(self.info.path)
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
        self.encoder = _Encoder(self._path(self.index), self.codec)
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


# ----------------------------------------------------------------------- utterances


def cut_utterances(
    info: MediaInfo,
    workdir: Path,
    *,
    max_seconds: float = 30.0,
    min_seconds: float = 1.0,
    codec: str = "wav",
) -> Iterator[Chunk]:
    """Cut at pauses into phrase-sized pieces, for models that return no timestamps.

    Each piece holds one phrase (plus up to PAD_SECONDS of its surrounding pause); a
    phrase longer than `max_seconds` is cut at its longest inner pause. Stretches without
    sound are left out. `speech_start`/`speech_end` say where sound begins and ends, on
    the original's timeline: they are the cue times. Pieces are WAV by default (written
    without a subprocess: a piece is at most ~1 MB)."""
    if codec not in CODECS:
        raise UsageError(f"unknown chunk codec {codec!r}", hint=f"use one of {', '.join(CODECS)}")
    if max_seconds < 2 * PAD_SECONDS + 1 or not 0 <= min_seconds < max_seconds:
        raise UsageError("utterance bounds need 1.5 <= max_seconds and min_seconds < max_seconds")
    workdir.mkdir(parents=True, exist_ok=True)
    cutter = _UtteranceCutter(info, workdir, CODECS[codec], max_seconds, min_seconds)
    try:
        yield from cutter.run()
    finally:
        cutter.close()


@dataclass(frozen=True)
class _Phrase:
    """Speech [start, end) inside the analysed buffer, the bounds a piece around it may
    extend to, and whether a pause follows it inside the buffer (else it may go on)."""

    start: int
    end: int
    lo: int
    hi: int
    closed: bool = True
    silent_before: bool = True


class _UtteranceCutter:
    def __init__(
        self, info: MediaInfo, workdir: Path, codec: Codec, max_seconds: float, min_seconds: float
    ) -> None:
        self.info = info
        self.workdir = workdir
        self.codec = codec
        self.stem = info.path.stem or "audio"
        self.pad = int(PAD_SECONDS * RATE)
        self.max_piece = int(max_seconds * RATE)
        self.max_speech = self.max_piece - 2 * self.pad
        self.min_piece = int(min_seconds * RATE)
        self.lookahead = self.max_piece + int(LOOKAHEAD_SECONDS * RATE)
        self.buf = _Buffer()
        self.floor = 0  # the last piece ended here: the next may not start before it
        self.index = 0
        self.decoder: _Decoder | None = None

    def close(self) -> None:
        if self.decoder is not None:
            self.decoder.close()
            self.decoder = None

    def run(self) -> Iterator[Chunk]:
        self.decoder = _Decoder(self.info.path)
        while True:
            while self.buf.end - self.buf.start < self.lookahead and not self.decoder.eof:
                self.buf.append(self.decoder.read())
            if self.buf.end == self.buf.start:
                return
            eof = self.decoder.eof
            yield from self._drain(eof)
            if eof:
                return

    def _drain(self, eof: bool) -> Iterator[Chunk]:
        """Emit every phrase the buffer holds completely; keep the rest for later."""
        pcm = bytes(self.buf.data)
        origin = self.buf.start
        samples = len(pcm) // SAMPLE_BYTES
        threshold = silence_threshold(frame_levels(pcm))
        phrases = _phrases(pcm, threshold, max(0, self.floor - origin))
        keep = samples - self.pad
        for phrase in phrases:
            current = phrase
            while current.end - current.start > self.max_speech:
                first, current = self._split_long(pcm, current, threshold)
                yield self._piece(pcm, origin, first)
            if not current.closed and not eof:
                keep = max(current.start - self.pad, self.floor - origin)
                break
            yield self._piece(pcm, origin, current)
        self.buf.drop_before(origin + max(keep, self.floor - origin))

    def _split_long(self, pcm: bytes, phrase: _Phrase, threshold: float) -> tuple[_Phrase, _Phrase]:
        """Cut a phrase too long for one piece at the longest inner pause of the second
        half of what fits in a piece (so pieces stay at least half the maximum)."""
        lo = phrase.start + max(self.min_piece, self.max_speech // 2)
        hi = phrase.start + self.max_speech
        levels = frame_levels(pcm[lo * 2 : hi * 2])
        first_end, second_start, silent = _longest_quiet(levels, threshold)
        cut = lo + (first_end + second_start) * FRAME_SAMPLES // 2
        first = replace(phrase, end=lo + first_end * FRAME_SAMPLES, hi=cut, closed=True)
        second = replace(phrase, start=lo + second_start * FRAME_SAMPLES, lo=cut,
                         silent_before=silent)  # fmt: skip
        return first, second

    def _piece(self, pcm: bytes, origin: int, phrase: _Phrase) -> Chunk:
        lo = max(phrase.lo, self.floor - origin)
        start = max(lo, phrase.start - self.pad)
        end = min(phrase.hi, phrase.end + self.pad)
        short = self.min_piece - (end - start)
        if short > 0:
            start = max(lo, start - short // 2)
            end = min(phrase.hi, start + self.min_piece)
            start = max(lo, min(start, end - self.min_piece))
        path = self.workdir / f"{self.stem}-u{self.index:04d}.{self.codec.ext}"
        size = encode_pcm(pcm[start * 2 : end * 2], path, self.codec)
        chunk = Chunk(
            index=self.index,
            path=path,
            start=(origin + start) / RATE,
            end=(origin + end) / RATE,
            size=size,
            filename=path.name,
            speech_start=(origin + phrase.start) / RATE,
            speech_end=(origin + phrase.end) / RATE,
            overlap_before=0.0,
            cut_in_silence=phrase.silent_before,
        )
        self.index += 1
        self.floor = origin + end
        return chunk


def _phrases(pcm: bytes, threshold: float, first: int) -> list[_Phrase]:
    """Stretches of sound separated by pauses of at least PAUSE_MS, edges refined to
    2.5 ms; each may extend at most half way into the pauses around it."""
    samples = len(pcm) // SAMPLE_BYTES
    pauses = find_silences(pcm, threshold, PAUSE_MS)
    spans, at = [], first
    for a, b in [*pauses, (samples, samples)]:
        if a > at:
            spans.append((*_refine(pcm, at, a, threshold), a < samples))
        at = max(at, b)
    spans = [span for span in spans if span[1] - span[0] >= MIN_SOUND_SECONDS * RATE]
    phrases = []
    for k, (s, e, closed) in enumerate(spans):
        lo = (spans[k - 1][1] + s) // 2 if k else first
        hi = (e + spans[k + 1][0]) // 2 if k + 1 < len(spans) else samples
        phrases.append(_Phrase(s, e, lo, hi, closed))
    return phrases


def _refine(pcm: bytes, start: int, end: int, threshold: float) -> tuple[int, int]:
    """Move a span's edges to the first and last 2.5 ms frame above the threshold."""
    margin = RATE * 30 // 1000
    samples = len(pcm) // SAMPLE_BYTES
    lo, hi = max(0, start - margin), min(samples, end + margin)
    levels = frame_levels(pcm[lo * 2 : hi * 2], FINE_SAMPLES)
    loud = [k for k, level in enumerate(levels) if level > threshold]
    if not loud:
        return start, start
    return lo + loud[0] * FINE_SAMPLES, lo + (loud[-1] + 1) * FINE_SAMPLES


def _longest_quiet(levels: list[float], threshold: float) -> tuple[int, int, bool]:
    """The longest run of frames under the threshold (at least 30 ms) as (first, end)
    frame indices and True; else the quietest frame and False."""
    best, run_start = (0, 0), None
    for k, level in enumerate([*levels, math.inf]):
        if level <= threshold and run_start is None:
            run_start = k
        elif level > threshold and run_start is not None:
            if k - run_start > best[1] - best[0]:
                best = (run_start, k)
            run_start = None
    if best[1] - best[0] >= 3:
        return best[0], best[1], True
    quiet = min(range(len(levels)), key=levels.__getitem__, default=0)
    return quiet, quiet, False
