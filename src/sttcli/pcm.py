"""Decoded audio as the rest of sttcli sees it: 16 kHz mono s16 PCM.

ffmpeg processes that decode an input to PCM on a pipe and encode PCM into chunk files,
a buffer of the samples still needed, and silence analysis with thresholds relative to
the analysed audio's own loudness (so quiet and loud recordings behave alike).
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import tempfile
import threading
import warnings
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sttcli.errors import InputError
from sttcli.media import one_line

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


class Stopped(Exception):
    """A decode was stopped from another thread (the run is being cancelled)."""


class Decoder:
    """ffmpeg decoding one input to s16le 16 kHz mono on a pipe. Setting `stop` (from
    any thread) ends the decode at the next block, raising Stopped."""

    def __init__(self, path: Path, stop: threading.Event | None = None) -> None:
        self.path = path
        self.stop = stop
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
        if self.stop is not None and self.stop.is_set():
            raise Stopped(str(self.path))
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


class Encoder:
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
    encoder = Encoder(path, codec)
    try:
        encoder.write(pcm)
        return encoder.finish()
    finally:
        encoder.close()


def decode_file(path: Path) -> bytes:
    """A (small) file decoded to s16le 16 kHz mono in memory: for re-cutting one chunk."""
    decoder = Decoder(path)
    try:
        return b"".join(iter(decoder.read, b""))
    finally:
        decoder.close()


class PcmBuffer:
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
