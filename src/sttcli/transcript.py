"""The one internal model of a transcript, and parsing of every response shape into it.

All times are float seconds from the start of the *original* recording (for a chunk's
own response, from the start of the chunk until `stitch.shift` moves it).
"""

from __future__ import annotations

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
