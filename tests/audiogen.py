"""Test recordings with speech-like bursts at known positions.

Each burst is a tone whose frequency names a word (see WORDS/FREQS), so the test gateway
can "recognise" what it hears from the audio itself: a burst lost or duplicated at a chunk
seam shows up as a missing or extra word, and a shifted timestamp as a time error.

Recordings are streamed block by block into ffmpeg, so a 3-hour file costs no more memory
than a 10-second one.
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WORDS: tuple[str, ...] = (
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
    "india", "juliett", "kilo", "lima", "mike", "november", "oscar", "papa",
    "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey", "xray",
)  # fmt: skip
FREQS: tuple[float, ...] = tuple(440.0 + 110.0 * k for k in range(len(WORDS)))
FREQ_OF = dict(zip(WORDS, FREQS, strict=True))

BURST_DBFS = -12.0
NOISE_DBFS = -62.0
FADE_SECONDS = 0.008
BLOCK_SECONDS = 10.0


@dataclass(frozen=True)
class Burst:
    start: float
    end: float
    word: str


def schedule(
    duration: float,
    *,
    seed: int = 0,
    length: tuple[float, float] = (0.18, 0.5),
    gap: tuple[float, float] = (0.12, 0.3),
    pause: tuple[float, float] = (0.7, 1.6),
    words_per_phrase: tuple[int, int] = (2, 7),
    lead: float = 0.5,
) -> list[Burst]:
    """Phrases of words (short gaps) separated by pauses (longer silences).

    With `pause` set as short as `gap`, the recording has no silence long enough to cut in.
    """
    rng = random.Random(seed)
    bursts: list[Burst] = []
    t = lead
    while True:
        for _ in range(rng.randint(*words_per_phrase)):
            length_s = rng.uniform(*length)
            if t + length_s > duration - 0.2:
                return bursts
            bursts.append(Burst(round(t, 4), round(t + length_s, 4), rng.choice(WORDS)))
            t += length_s + rng.uniform(*gap)
        t += rng.uniform(*pause)


def continuous_schedule(duration: float, *, seed: int = 0) -> list[Burst]:
    """Speech without a usable silence: words 40-70 ms apart, no pauses at all."""
    return schedule(
        duration, seed=seed, gap=(0.04, 0.07), pause=(0.0, 0.0), words_per_phrase=(50, 50)
    )


def _pcm_blocks(
    bursts: Sequence[Burst], duration: float, rate: int, channels: int, seed: int
) -> Iterator[bytes]:
    rng = np.random.default_rng(seed)
    amplitude = 10 ** (BURST_DBFS / 20)
    noise = 10 ** (NOISE_DBFS / 20)
    total = round(duration * rate)
    block = round(BLOCK_SECONDS * rate)
    fade = max(1, round(FADE_SECONDS * rate))
    index = 0
    for first in range(0, total, block):
        n = min(block, total - first)
        t = (first + np.arange(n)) / rate
        signal = rng.normal(0.0, noise, n)
        while index < len(bursts) and bursts[index].end * rate <= first:
            index += 1
        j = index
        while j < len(bursts) and bursts[j].start * rate < first + n:
            _add_burst(signal, t, bursts[j], amplitude, fade, rate, first)
            j += 1
        samples = np.clip(signal * 32767.0, -32768, 32767).astype("<i2")
        if channels > 1:
            samples = np.repeat(samples[:, None], channels, axis=1).reshape(-1)
        yield samples.tobytes()


def _add_burst(
    signal: np.ndarray,
    t: np.ndarray,
    burst: Burst,
    amplitude: float,
    fade: int,
    rate: int,
    first: int,
) -> None:
    lo = max(0, round(burst.start * rate) - first)
    hi = min(len(signal), round(burst.end * rate) - first)
    if hi <= lo:
        return
    k = np.arange(lo, hi) + first
    begin, end = round(burst.start * rate), round(burst.end * rate)
    envelope = np.minimum(1.0, np.minimum(k - begin, end - k) / fade)
    tone = np.sin(2 * np.pi * FREQ_OF[burst.word] * t[lo:hi])
    signal[lo:hi] += amplitude * envelope * tone


def write_recording(
    path: Path,
    bursts: Sequence[Burst],
    duration: float,
    *,
    rate: int = 16000,
    channels: int = 1,
    codec_args: Sequence[str] = (),
    seed: int = 0,
) -> Path:
    """Render bursts over a faint noise floor into `path`; the extension picks the container
    unless codec_args say otherwise (e.g. ["-c:a", "libmp3lame", "-b:a", "64k"])."""
    cmd = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "s16le", "-ar", str(rate), "-ac", str(channels), "-i", "pipe:0",
        *codec_args, str(path),
    ]  # fmt: skip
    with subprocess.Popen(cmd, stdin=subprocess.PIPE) as proc:
        assert proc.stdin is not None
        try:
            for block in _pcm_blocks(bursts, duration, rate, channels, seed):
                proc.stdin.write(block)
        finally:
            proc.stdin.close()
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed writing {path}")
    return path


def speech_file(
    path: Path, duration: float = 20.0, *, seed: int = 0, **kwargs: object
) -> tuple[Path, list[Burst]]:
    """A short recording with phrases and pauses; returns the path and its bursts."""
    bursts = schedule(duration, seed=seed)
    write_recording(path, bursts, duration, seed=seed, **kwargs)  # type: ignore[arg-type]
    return path, bursts
