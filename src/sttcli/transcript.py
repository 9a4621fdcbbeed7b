"""The one internal model of a transcript, and parsing of every response shape into it.

All times are float seconds from the start of the *original* recording (for a chunk's
own response, from the start of the chunk until `stitch.shift` moves it).
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

# Languages written without spaces between words: chunk texts are joined without one.
UNSPACED_LANGUAGES = frozenset({"ja", "zh", "th", "lo", "km", "my", "bo", "yue"})


@dataclass(frozen=True, slots=True)
class Word:
    word: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Segment:
    """One timed stretch of text. `extra` keeps the provider's other fields as given
    (tokens, temperature, avg_logprob, compression_ratio, no_speech_prob, seek, speaker...)."""

    id: int
    start: float
    end: float
    text: str
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Usage:
    """What a request cost, as the endpoint reported it. Sums over chunks with `+`."""

    seconds: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    audio_tokens: int = 0
    text_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            seconds=self.seconds + other.seconds,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            audio_tokens=self.audio_tokens + other.audio_tokens,
            text_tokens=self.text_tokens + other.text_tokens,
        )

    def describe(self) -> str:
        parts = []
        if self.seconds:
            parts.append(f"{self.seconds:.1f} s of audio billed")
        if self.total_tokens or self.input_tokens or self.output_tokens:
            parts.append(
                f"{self.input_tokens} input tokens ({self.audio_tokens} audio), "
                f"{self.output_tokens} output tokens, {self.total_tokens} total"
            )
        return "; ".join(parts) if parts else "no usage reported"


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    language: str | None = None
    duration: float | None = None
    segments: tuple[Segment, ...] = ()
    words: tuple[Word, ...] = ()
    usage: Usage | None = None
    task: str = "transcribe"

    @property
    def has_timestamps(self) -> bool:
        return bool(self.segments)

    def evolve(self, **changes: Any) -> Transcript:
        return replace(self, **changes)


# ---------------------------------------------------------------------------
# Parsing every response shape into the model
# ---------------------------------------------------------------------------

SEGMENT_CORE_KEYS = frozenset({"id", "start", "end", "text"})


class ResponseFormatError(ValueError):
    """The body does not have the shape its response_format promised."""


def unwrap_body(body: bytes, content_type: str) -> bytes:
    """Undo gateway wrapping: the self-hosted Portkey gateway answers text, srt and vtt
    as JSON `{"html-message": "<the text>"}`."""
    if "json" not in content_type.lower() and not body.lstrip().startswith(b"{"):
        return body
    try:
        decoded = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body
    if isinstance(decoded, dict) and set(decoded) == {"html-message"}:
        return str(decoded["html-message"]).encode()
    return body


def parse_response(body: bytes, content_type: str, response_format: str) -> Transcript:
    body = unwrap_body(body, content_type)
    text = body.decode("utf-8", errors="replace")
    if response_format in ("json", "verbose_json"):
        return parse_json(text)
    if response_format in ("srt", "vtt"):
        return parse_subtitles(text, response_format)
    return Transcript(text=text.strip())


def parse_json(text: str) -> Transcript:
    try:
        data = json.loads(text)
    except ValueError:
        raise ResponseFormatError("the endpoint's answer is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        raise ResponseFormatError("the endpoint's JSON answer has no 'text'")
    segments = tuple(_segment(i, s) for i, s in enumerate(data.get("segments") or ()))
    words = tuple(_word(w) for w in data.get("words") or ())
    duration = data.get("duration")
    return Transcript(
        text=data["text"].strip(),
        language=_str_or_none(data.get("language")),
        duration=float(duration) if duration is not None else None,
        segments=segments,
        words=words,
        usage=parse_usage(data.get("usage")),
        task=str(data.get("task") or "transcribe"),
    )


def _segment(index: int, raw: Mapping[str, Any]) -> Segment:
    try:
        return Segment(
            id=int(raw.get("id", index)),
            start=float(raw["start"]),
            end=float(raw["end"]),
            text=str(raw.get("text", "")),
            extra={k: v for k, v in raw.items() if k not in SEGMENT_CORE_KEYS},
        )
    except (KeyError, TypeError, ValueError):
        raise ResponseFormatError("a segment in the endpoint's answer has no valid times") from None


def _word(raw: Mapping[str, Any]) -> Word:
    try:
        return Word(word=str(raw["word"]), start=float(raw["start"]), end=float(raw["end"]))
    except (KeyError, TypeError, ValueError):
        raise ResponseFormatError("a word in the endpoint's answer has no valid times") from None


def _str_or_none(value: Any) -> str | None:
    return str(value) if value else None


def parse_usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    if raw.get("type") == "duration" or "seconds" in raw:
        return Usage(seconds=float(raw.get("seconds") or 0.0))
    details = raw.get("input_token_details") or {}
    return Usage(
        input_tokens=int(raw.get("input_tokens") or 0),
        output_tokens=int(raw.get("output_tokens") or 0),
        total_tokens=int(raw.get("total_tokens") or 0),
        audio_tokens=int(details.get("audio_tokens") or 0),
        text_tokens=int(details.get("text_tokens") or 0),
    )


def parse_subtitles(text: str, response_format: str) -> Transcript:
    import webvtt

    try:
        parsed = webvtt.WebVTT.from_buffer(io.StringIO(text), format=response_format)
    except Exception as exc:  # webvtt-py raises several unrelated types on bad input
        raise ResponseFormatError(f"the endpoint's {response_format} is malformed") from exc
    unescape = html.unescape if response_format == "vtt" else str
    segments = tuple(
        Segment(
            id=i, start=parse_clock(c.start), end=parse_clock(c.end), text=unescape(c.text.strip())
        )
        for i, c in enumerate(parsed.captions)
    )
    return Transcript(text=" ".join(s.text for s in segments if s.text), segments=segments)


def parse_clock(value: str) -> float:
    """'HH:MM:SS.mmm', 'MM:SS.mmm' or with a comma, to float seconds (exact to the ms)."""
    parts = value.replace(",", ".").split(":")
    seconds, _, millis = parts[-1].partition(".")
    total_ms = int(seconds) * 1000 + int((millis + "000")[:3])
    for unit, part in zip((60_000, 3_600_000), reversed(parts[:-1]), strict=False):
        total_ms += int(part) * unit
    return total_ms / 1000
