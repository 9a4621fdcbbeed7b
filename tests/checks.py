"""Assertions shared by the integration tests: parse outputs with independent parsers and
compare them with the ground truth a test recording was generated from."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass

import srt
import webvtt

from audiogen import Burst


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str


def phrases(bursts: Sequence[Burst], gap: float = 0.5) -> list[Cue]:
    """Group the truth into phrases: bursts closer than `gap` belong together."""
    groups: list[list[Burst]] = []
    for burst in bursts:
        if groups and burst.start - groups[-1][-1].end < gap:
            groups[-1].append(burst)
        else:
            groups.append([burst])
    return [Cue(g[0].start, g[-1].end, " ".join(b.word for b in g)) for g in groups]


def parse_srt(text: str) -> list[Cue]:
    subtitles = list(srt.parse(text))
    assert [s.index for s in subtitles] == list(range(1, len(subtitles) + 1)), "SRT indices"
    return [Cue(s.start.total_seconds(), s.end.total_seconds(), s.content) for s in subtitles]


def _clock(value: str) -> float:
    h, m, s = value.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def parse_vtt(text: str) -> list[Cue]:
    assert text.startswith("WEBVTT\n"), "VTT header"
    captions = webvtt.WebVTT.from_buffer(io.StringIO(text)).captions
    return [Cue(_clock(c.start), _clock(c.end), c.text) for c in captions]


def parse_verbose(text: str) -> tuple[list[Cue], list[Cue]]:
    data = json.loads(text)
    assert [s["id"] for s in data["segments"]] == list(range(len(data["segments"])))
    segments = [Cue(s["start"], s["end"], s["text"].strip()) for s in data["segments"]]
    words = [Cue(w["start"], w["end"], w["word"]) for w in data.get("words", [])]
    return segments, words


def assert_ordered(cues: Sequence[Cue]) -> None:
    for a, b in itertools.pairwise(cues):
        assert a.start < a.end <= b.start + 1e-9, f"cues overlap or run backwards: {a} {b}"


def assert_cues_match(cues: Sequence[Cue], truth: Sequence[Cue], tolerance: float) -> None:
    """Same cues, same text, every start and end within `tolerance` seconds of the truth."""
    assert_ordered(cues)
    assert [c.text for c in cues] == [t.text for t in truth], "cue texts differ from truth"
    worst = max(
        max(abs(c.start - t.start), abs(c.end - t.end)) for c, t in zip(cues, truth, strict=True)
    )
    assert worst <= tolerance, f"a cue is {worst * 1000:.1f} ms from where its speech is"


def assert_words_match(words: Sequence[Cue], bursts: Sequence[Burst], tolerance: float) -> None:
    """Nothing lost, nothing duplicated, every word where its burst is."""
    assert [w.text for w in words] == [b.word for b in bursts], "words lost or duplicated"
    worst = max(
        max(abs(w.start - b.start), abs(w.end - b.end)) for w, b in zip(words, bursts, strict=True)
    )
    assert worst <= tolerance, f"a word is {worst * 1000:.1f} ms from its burst"
