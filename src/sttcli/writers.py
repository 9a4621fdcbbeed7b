"""Rendering a Transcript as json, text, verbose_json, SRT or WebVTT.

Every time is rounded to integer milliseconds in exactly one place (`to_ms`) and every
subtitle timestamp is printed by exactly one function (`format_timestamp`). Renderers
take a Transcript and return a `str`; writing files is someone else's job.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from enum import Enum
from typing import Any, NamedTuple

from sttcli.transcript import Segment, Transcript, Usage, Word

__all__ = [
    "Cue",
    "OutputFormat",
    "clean_cue_text",
    "format_timestamp",
    "iter_cues",
    "render",
    "render_json",
    "render_srt",
    "render_text",
    "render_verbose_json",
    "render_vtt",
    "round_time",
    "to_ms",
]


class OutputFormat(str, Enum):
    JSON = "json"
    TEXT = "text"
    SRT = "srt"
    VTT = "vtt"
    VERBOSE_JSON = "verbose_json"

    @property
    def needs_timestamps(self) -> bool:
        """Whether rendering this format needs segments with times."""
        return self in _TIMED_FORMATS

    @property
    def extension(self) -> str:
        """The file extension (without the dot) for an output file of this format."""
        return _EXTENSIONS[self]


_TIMED_FORMATS = frozenset({OutputFormat.SRT, OutputFormat.VTT, OutputFormat.VERBOSE_JSON})
_EXTENSIONS = {
    OutputFormat.JSON: "json",
    OutputFormat.TEXT: "txt",
    OutputFormat.SRT: "srt",
    OutputFormat.VTT: "vtt",
    OutputFormat.VERBOSE_JSON: "json",
}


# --- time ------------------------------------------------------------------------------


def to_ms(seconds: float) -> int:
    """Round a time in seconds to integer milliseconds, halves up; negatives become 0.

    The only place in the product where a time is rounded.
    """
    return max(0, math.floor(seconds * 1000 + 0.5))


def round_time(seconds: float) -> float:
    """A time rounded to the millisecond, as a float, for the JSON renderers."""
    return to_ms(seconds) / 1000


def format_timestamp(seconds: float, *, decimal_marker: str) -> str:
    """`HH:MM:SS<marker>mmm`, hours always present (two digits or more)."""
    return _format_ms(to_ms(seconds), decimal_marker)


def _format_ms(ms: int, decimal_marker: str) -> str:
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_marker}{ms:03d}"


# --- cues ------------------------------------------------------------------------------


class Cue(NamedTuple):
    """One subtitle cue: integer milliseconds, end > start, one line of non-empty text."""

    start_ms: int
    end_ms: int
    text: str


_ARROW = re.compile(r"-{2,}>")


def clean_cue_text(text: str) -> str:
    """Text safe as one cue: a single line, no `-->`, stripped.

    Every line break Python knows (CR, LF, U+2028, ...) joins its neighbours with one
    space, so no blank line can end the cue early and no line of text can pass for an
    index or a timing line; runs of `-` before `>` become `->`.
    """
    lines = (_ARROW.sub("->", line).strip() for line in text.splitlines())
    return " ".join(line for line in lines if line)


def iter_cues(transcript: Transcript) -> Iterator[Cue]:
    """Which cues exist: one per segment with non-empty cleaned text, at least 1 ms long.
    A recording without speech has none: its subtitles are valid and empty."""
    for segment in transcript.segments:
        text = clean_cue_text(segment.text)
        if text:
            start = to_ms(segment.start)
            yield Cue(start, max(to_ms(segment.end), start + 1), text)


def render_srt(transcript: Transcript) -> str:
    blocks = (
        f"{index}\n{_timings(cue, ',')}\n{cue.text}\n\n"
        for index, cue in enumerate(iter_cues(transcript), start=1)
    )
    return "".join(blocks)


def render_vtt(transcript: Transcript) -> str:
    blocks = (f"{_timings(cue, '.')}\n{_escape_vtt(cue.text)}\n\n" for cue in iter_cues(transcript))
    return "WEBVTT\n\n" + "".join(blocks)


def _timings(cue: Cue, decimal_marker: str) -> str:
    start = _format_ms(cue.start_ms, decimal_marker)
    return f"{start} --> {_format_ms(cue.end_ms, decimal_marker)}"


def _escape_vtt(text: str) -> str:
    """WebVTT cue text treats `&` and `<` as markup: escape them (and `>`)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- text and JSON ---------------------------------------------------------------------


def render_text(transcript: Transcript) -> str:
    return transcript.text.strip() + "\n"


def render_json(transcript: Transcript) -> str:
    body: dict[str, Any] = {"text": transcript.text}
    if transcript.usage is not None:
        body["usage"] = usage_json(transcript.usage)
    return _dump(body)


def render_verbose_json(transcript: Transcript) -> str:
    duration = transcript.duration
    body: dict[str, Any] = {
        "task": transcript.task,
        "language": transcript.language,
        "duration": None if duration is None else round_time(duration),
        "text": transcript.text,
        "segments": [segment_json(segment) for segment in transcript.segments],
    }
    if transcript.words:
        body["words"] = [word_json(word) for word in transcript.words]
    if transcript.usage is not None:
        body["usage"] = usage_json(transcript.usage)
    return _dump(body)


def segment_json(segment: Segment) -> dict[str, Any]:
    """A segment as verbose_json has it: core fields first, then every extra field."""
    body: dict[str, Any] = {
        "id": segment.id,
        "seek": segment.extra.get("seek", 0),
        "start": round_time(segment.start),
        "end": round_time(segment.end),
        "text": segment.text,
    }
    body.update((k, v) for k, v in segment.extra.items() if k not in body)
    return body


def word_json(word: Word) -> dict[str, Any]:
    return {"word": word.word, "start": round_time(word.start), "end": round_time(word.end)}


def usage_json(usage: Usage) -> dict[str, Any]:
    """API.md's shapes: `duration` when only seconds were billed, else `tokens`."""
    counts = (usage.input_tokens, usage.output_tokens, usage.total_tokens, usage.audio_tokens)
    if not any((*counts, usage.text_tokens)):
        return {"type": "duration", "seconds": round_time(usage.seconds)}
    body: dict[str, Any] = {
        "type": "tokens",
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "input_token_details": {
            "audio_tokens": usage.audio_tokens,
            "text_tokens": usage.text_tokens,
        },
    }
    if usage.seconds:
        body["seconds"] = round_time(usage.seconds)
    return body


def _dump(body: dict[str, Any]) -> str:
    return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


# --- dispatch --------------------------------------------------------------------------

_RENDERERS: dict[OutputFormat, Callable[[Transcript], str]] = {
    OutputFormat.JSON: render_json,
    OutputFormat.TEXT: render_text,
    OutputFormat.VERBOSE_JSON: render_verbose_json,
    OutputFormat.SRT: render_srt,
    OutputFormat.VTT: render_vtt,
}


def render(transcript: Transcript, fmt: OutputFormat) -> str:
    """The transcript in `fmt`. SRT and VTT have one cue per segment (the pipeline asks
    for timestamps, or times utterances itself, whenever they are the output)."""
    return _RENDERERS[OutputFormat(fmt)](transcript)
