"""Pure functions over Transcripts: shift by a chunk's start, drop overlap duplicates by
time, merge in chunk order.

Where two neighbouring chunks overlap, one split time is chosen inside the overlap and
each item (segment or word) is kept from exactly one side, by where its midpoint falls.
Nothing is ever decided by comparing text.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import reduce
from operator import add
from typing import TypeVar

from sttcli.transcript import UNSPACED_LANGUAGES, Segment, Transcript, Word

__all__ = ["Part", "group_words", "is_unspaced", "shift", "single_segment", "stitch"]

_Timed = TypeVar("_Timed", Segment, Word)
_Interval = tuple[float, float]
# Float noise: one boundary computed from two chunk offsets may differ in its last bits
# (about 1e-10 s at 400 hours). Far below any real timing.
_EPSILON = 1e-9
# Endpoints round times (Whisper's tokens are 20 ms apart; gateways round to 1 ms), so an
# item cut by a chunk's edge may end up to this far short of it.
EDGE_SLACK = 0.02

# Whisper's verbose_json may name the language instead of giving its code.
_LANGUAGE_NAMES = {
    "japanese": "ja",
    "chinese": "zh",
    "mandarin": "zh",
    "cantonese": "yue",
    "thai": "th",
    "lao": "lo",
    "khmer": "km",
    "burmese": "my",
    "myanmar": "my",
    "tibetan": "bo",
}


@dataclass(frozen=True)
class Part:
    """One chunk's transcript (times relative to the chunk) and where the chunk lies in
    the original recording (its exact measured start and end, in seconds)."""

    transcript: Transcript
    start: float
    end: float


# --- shifting --------------------------------------------------------------------------


def shift(transcript: Transcript, offset: float) -> Transcript:
    """Move every segment and word by `offset` seconds. Whisper's `seek` (10 ms frames)
    moves too. `duration` is a length and stays as it is."""
    segments = tuple(_shift_segment(segment, offset) for segment in transcript.segments)
    words = tuple(
        replace(word, start=word.start + offset, end=word.end + offset) for word in transcript.words
    )
    return transcript.evolve(segments=segments, words=words)


def _shift_segment(segment: Segment, offset: float) -> Segment:
    extra = segment.extra
    seek = extra.get("seek")
    if isinstance(seek, int) and not isinstance(seek, bool):
        extra = {**extra, "seek": seek + round(offset * 100)}
    return replace(segment, start=segment.start + offset, end=segment.end + offset, extra=extra)


# --- stitching -------------------------------------------------------------------------


def stitch(parts: Sequence[Part], *, duration: float | None = None) -> Transcript:
    """One transcript of the original recording from its chunks' transcripts."""
    ordered = sorted(parts, key=lambda part: part.start)
    if not ordered:
        return Transcript(text="", duration=duration)
    shifted = [shift(part.transcript, part.start) for part in ordered]
    cuts = [
        _split_time(shifted[i], shifted[i + 1], ordered[i], ordered[i + 1])
        for i in range(len(ordered) - 1)
    ]
    lows = [-math.inf, *(-math.inf if cut is None else cut for cut in cuts)]
    highs = [*(math.inf if cut is None else cut for cut in cuts), math.inf]
    language = next((t.language for t in shifted if t.language), None)
    unspaced = is_unspaced(language)
    kept = [
        _keep_between(t, lo, hi, unspaced) for t, lo, hi in zip(shifted, lows, highs, strict=True)
    ]
    texts = (_part_text(whole, part, unspaced) for whole, part in zip(shifted, kept, strict=True))
    segments = _ordered((s for t in kept for s in t.segments), duration)
    usages = [t.usage for t in shifted if t.usage is not None]
    return Transcript(
        text=_join(texts, unspaced),
        language=language,
        duration=duration if duration is not None else max(part.end for part in ordered),
        segments=tuple(replace(segment, id=i) for i, segment in enumerate(segments)),
        words=tuple(_ordered((w for t in kept for w in t.words), duration)),
        usage=reduce(add, usages) if usages else None,
        task=shifted[0].task,
    )


def _split_time(earlier: Transcript, later: Transcript, prev: Part, nxt: Part) -> float | None:
    """The one time inside the overlap of two neighbours that decides which side keeps
    what, or None when they do not overlap.

    Prefers the middle of the widest stretch free of segments and words (from either
    side), then of words alone (segments may span the whole overlap), then the middle of
    the overlap."""
    lo, hi = nxt.start, prev.end
    if lo >= hi:
        return None
    for intervals in (_all_intervals, _word_intervals):
        gaps = [
            *_gaps(intervals(earlier), prev.start, prev.end, lo, hi),
            *_gaps(intervals(later), nxt.start, nxt.end, lo, hi),
        ]
        if gaps:
            return _middle_of_widest(gaps, (lo + hi) / 2)
    return (lo + hi) / 2


def _all_intervals(transcript: Transcript) -> list[_Interval]:
    items: list[Segment | Word] = [*transcript.segments, *transcript.words]
    return [(item.start, item.end) for item in items]


def _word_intervals(transcript: Transcript) -> list[_Interval]:
    return [(word.start, word.end) for word in transcript.words]


def _gaps(
    intervals: list[_Interval], start: float, end: float, lo: float, hi: float
) -> list[_Interval]:
    """Stretches of [start, end] covered by no interval, clipped to [lo, hi].

    Two touching intervals leave a zero-width gap; the part's own edges count only when
    real silence lies next to them: an item cut by the chunk's edge ends there, give or
    take the endpoint's rounding (`EDGE_SLACK`). Differences below `_EPSILON` are float
    noise from adding chunk offsets. A side without intervals says nothing about where
    speech is."""
    if not intervals:
        return []
    gaps: list[_Interval] = []
    cursor, at_edge = start, True
    for a, b in sorted(intervals):
        slack = EDGE_SLACK if at_edge else _EPSILON
        if a > cursor + slack or (a >= cursor - _EPSILON and not at_edge):
            gaps.append((cursor, max(a, cursor)))
        if b > cursor:
            cursor, at_edge = b, False
    if end > cursor + EDGE_SLACK:
        gaps.append((cursor, end))
    clipped = ((max(a, lo), min(b, hi)) for a, b in gaps)
    return [(a, b) for a, b in clipped if a <= b]


def _middle_of_widest(gaps: list[_Interval], centre: float) -> float:
    def preference(gap: _Interval) -> tuple[float, float]:
        return (gap[1] - gap[0], -abs((gap[0] + gap[1]) / 2 - centre))

    a, b = max(gaps, key=preference)
    return (a + b) / 2


def _keep_between(transcript: Transcript, lo: float, hi: float, unspaced: bool) -> Transcript:
    """Only what lies in [lo, hi) by midpoint. A segment crossing lo or hi is cut there
    when it has words: it keeps the words inside and its text is rebuilt from them, so
    a segment heard by both neighbours is not told twice."""
    words = tuple(w for w in transcript.words if lo <= _mid(w) < hi)
    if not transcript.words:
        segments = tuple(s for s in transcript.segments if lo <= _mid(s) < hi)
        return transcript.evolve(segments=segments, words=words)
    trimmed = (_trim(s, ws, lo, hi, unspaced) for s, ws in group_words(transcript))
    return transcript.evolve(segments=tuple(s for s in trimmed if s is not None), words=words)


def _trim(
    segment: Segment, words: tuple[Word, ...], lo: float, hi: float, unspaced: bool
) -> Segment | None:
    if not (words and (_crosses(segment, lo) or _crosses(segment, hi))):
        return segment if lo <= _mid(segment) < hi else None
    inside = [word.word for word in words if lo <= _mid(word) < hi]
    if not inside:
        return None
    return replace(
        segment,
        start=max(segment.start, lo),
        end=min(segment.end, hi),
        text=_join(inside, unspaced),
        extra={k: v for k, v in segment.extra.items() if k != "tokens"},
    )


def _crosses(segment: Segment, time: float) -> bool:
    """Whether `time` lies inside the segment, not just at one of its ends."""
    return segment.start + _EPSILON < time < segment.end - _EPSILON


def _mid(item: Segment | Word) -> float:
    return (item.start + item.end) / 2


def _ordered(items: Iterable[_Timed], duration: float | None) -> list[_Timed]:
    """Sorted by start, each end clipped to the next start, all clamped to [0, duration]."""
    by_start = sorted(items, key=lambda item: item.start)
    result: list[_Timed] = []
    for i, item in enumerate(by_start):
        end = min(item.end, by_start[i + 1].start) if i + 1 < len(by_start) else item.end
        start, end = _clamp(item.start, duration), _clamp(end, duration)
        result.append(replace(item, start=start, end=max(start, end)))
    return result


def _clamp(time: float, duration: float | None) -> float:
    time = max(time, 0.0)
    return time if duration is None else min(time, duration)


def _part_text(whole: Transcript, kept: Transcript, unspaced: bool) -> str:
    """A part's share of the text: from its kept segments when it had segments."""
    if whole.segments:
        return _join((segment.text for segment in kept.segments), unspaced)
    return whole.text


def _join(texts: Iterable[str], unspaced: bool) -> str:
    """Pieces joined with one space (none for unspaced languages), edges stripped."""
    pieces = (text.strip() for text in texts)
    return ("" if unspaced else " ").join(piece for piece in pieces if piece)


def is_unspaced(language: str | None) -> bool:
    """Whether `language` (a code like `ja`/`zh-TW` or a name like `japanese`) is written
    without spaces between words."""
    if not language:
        return False
    key = language.strip().lower().replace("_", "-")
    return _LANGUAGE_NAMES.get(key, key.split("-")[0]) in UNSPACED_LANGUAGES


# --- models without timestamps ----------------------------------------------------------


def single_segment(transcript: Transcript, start: float, end: float) -> Transcript:
    """A chunk-relative transcript whose only segment is [start, end] with the response's
    text: the cue of an utterance-sized piece transcribed by a model without timestamps.
    Empty text gives no segment."""
    if end < start:
        raise ValueError(f"segment ends before it starts: {start} > {end}")
    text = transcript.text.strip()
    segments = (Segment(id=0, start=start, end=end, text=text),) if text else ()
    return transcript.evolve(segments=segments)


# --- words and segments -----------------------------------------------------------------


def group_words(transcript: Transcript) -> list[tuple[Segment, tuple[Word, ...]]]:
    """Every segment with the words that belong to it, by time: a word goes to the
    segment containing its midpoint, else to the nearest one. Each word is assigned
    exactly once (segments assumed ordered and non-overlapping, as stitch makes them);
    without segments the result is empty."""
    segments = transcript.segments
    order = sorted(range(len(segments)), key=lambda i: segments[i].start)
    starts = [segments[i].start for i in order]
    groups: list[list[Word]] = [[] for _ in segments]
    if segments:
        for word in transcript.words:
            groups[_nearest_segment(word, segments, order, starts)].append(word)
    return [(segment, tuple(group)) for segment, group in zip(segments, groups, strict=True)]


def _nearest_segment(
    word: Word, segments: Sequence[Segment], order: list[int], starts: list[float]
) -> int:
    mid = (word.start + word.end) / 2
    k = bisect_right(starts, mid) - 1
    candidates = [order[j] for j in (k, k + 1) if 0 <= j < len(order)]

    def distance(i: int) -> float:
        return max(segments[i].start - mid, mid - segments[i].end, 0.0)

    return min(candidates, key=distance)
