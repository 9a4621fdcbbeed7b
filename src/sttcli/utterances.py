"""Utterance-sized pieces for models that return no timestamps.

The recording is cut at pauses into phrases; each piece's measured speech start and end
become its cue, so such models still give correct subtitles.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from sttcli.chunking import Chunk
from sttcli.errors import UsageError
from sttcli.media import MediaInfo
from sttcli.pcm import (
    CODECS,
    FINE_SAMPLES,
    FRAME_SAMPLES,
    RATE,
    SAMPLE_BYTES,
    Codec,
    Decoder,
    PcmBuffer,
    encode_pcm,
    find_silences,
    frame_levels,
    silence_threshold,
)

PAUSE_MS = 450  # a phrase ends at a silence at least this long
PAD_SECONDS = 0.25  # audio kept either side of the speech in a piece
MIN_SOUND_SECONDS = 0.08  # shorter sounds (clicks) are not speech
LOOKAHEAD_SECONDS = 12.0  # audio analysed beyond max_seconds before emitting a phrase


def cut_utterances(
    info: MediaInfo,
    workdir: Path,
    *,
    max_seconds: float = 30.0,
    min_seconds: float = 1.0,
    codec: str = "wav",
    stop: threading.Event | None = None,
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
    cutter.stop = stop
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
        self.buf = PcmBuffer()
        self.floor = 0  # the last piece ended here: the next may not start before it
        self.index = 0
        self.decoder: Decoder | None = None
        self.stop: threading.Event | None = None

    def close(self) -> None:
        if self.decoder is not None:
            self.decoder.close()
            self.decoder = None

    def run(self) -> Iterator[Chunk]:
        self.decoder = Decoder(self.info.path, self.stop)
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
