"""Parsing every response shape into the Transcript model."""

from __future__ import annotations

import json

import pytest

from sttcli.transcript import (
    ResponseFormatError,
    Usage,
    parse_clock,
    parse_response,
    unwrap_body,
)

VERBOSE = {
    "task": "transcribe",
    "language": "english",
    "duration": 8.47,
    "text": "Hello there. General Kenobi.",
    "segments": [
        {"id": 0, "seek": 0, "start": 0.0, "end": 3.319, "text": " Hello there.",
         "tokens": [50364, 2425], "temperature": 0.0, "avg_logprob": -0.28,
         "compression_ratio": 0.8, "no_speech_prob": 0.01},
        {"id": 1, "seek": 0, "start": 3.319, "end": 8.47, "text": " General Kenobi.",
         "tokens": [50530], "temperature": 0.0, "avg_logprob": -0.2,
         "compression_ratio": 0.8, "no_speech_prob": 0.01},
    ],
    "words": [{"word": "Hello", "start": 0.0, "end": 0.5}, {"word": "there", "start": 0.5,
              "end": 1.0}],
    "usage": {"type": "duration", "seconds": 9},
}  # fmt: skip


def test_verbose_json_keeps_segments_words_and_extras() -> None:
    t = parse_response(json.dumps(VERBOSE).encode(), "application/json", "verbose_json")
    assert t.text == "Hello there. General Kenobi."
    assert t.language == "english" and t.duration == 8.47
    assert [s.start for s in t.segments] == [0.0, 3.319]
    assert t.segments[1].extra["tokens"] == [50530]
    assert t.segments[0].extra["seek"] == 0
    assert [w.word for w in t.words] == ["Hello", "there"]
    assert t.usage == Usage(seconds=9.0)


def test_json_with_token_usage() -> None:
    body = {
        "text": "hi",
        "usage": {"type": "tokens", "input_tokens": 14, "output_tokens": 45, "total_tokens": 59,
                  "input_token_details": {"audio_tokens": 14, "text_tokens": 0}},
    }  # fmt: skip
    t = parse_response(json.dumps(body).encode(), "application/json", "json")
    assert t.text == "hi" and not t.has_timestamps
    assert t.usage == Usage(input_tokens=14, output_tokens=45, total_tokens=59, audio_tokens=14)
    assert (t.usage + t.usage).total_tokens == 118


def test_text_body() -> None:
    assert parse_response(b"  plain words\n", "text/plain", "text").text == "plain words"


def test_srt_and_vtt_bodies_keep_milliseconds() -> None:
    srt = "1\n00:00:01,234 --> 00:00:02,500\nhello\n\n2\n01:02:03,004 --> 01:02:04,000\nworld\n"
    t = parse_response(srt.encode(), "text/plain", "srt")
    assert [(s.start, s.end, s.text) for s in t.segments] == [
        (1.234, 2.5, "hello"),
        (3723.004, 3724.0, "world"),
    ]
    assert t.text == "hello world"
    vtt = "WEBVTT\n\n00:00:00.120 --> 00:00:01.999\nfirst\n\n00:01:00.001 --> 00:01:02.000\nx\n"
    v = parse_response(vtt.encode(), "text/vtt", "vtt")
    assert [(s.start, s.end) for s in v.segments] == [(0.12, 1.999), (60.001, 62.0)]


def test_portkey_html_message_wrapping_is_undone() -> None:
    wrapped = json.dumps({"html-message": "WEBVTT\n\n00:00:00.500 --> 00:00:01.000\nhi\n"})
    t = parse_response(wrapped.encode(), "application/json", "vtt")
    assert [(s.start, s.text) for s in t.segments] == [(0.5, "hi")]
    text = json.dumps({"html-message": "just text"}).encode()
    assert parse_response(text, "application/json", "text").text == "just text"
    assert unwrap_body(b'{"text": "x"}', "application/json") == b'{"text": "x"}'


@pytest.mark.parametrize(
    ("body", "fmt"),
    [
        (b"<html>nope</html>", "json"),
        (b'{"no_text": 1}', "json"),
        (b'{"text": "x", "segments": [{"id": 0, "text": "no times"}]}', "verbose_json"),
    ],
)
def test_malformed_bodies_raise(body: bytes, fmt: str) -> None:
    with pytest.raises(ResponseFormatError):
        parse_response(body, "application/json", fmt)


@pytest.mark.parametrize(
    ("clock", "seconds"),
    [("00:00:00,000", 0.0), ("00:00:01.5", 1.5), ("01:00:00.001", 3600.001),
     ("12:34.567", 754.567), ("100:00:00,999", 360000.999)],
)  # fmt: skip
def test_parse_clock(clock: str, seconds: float) -> None:
    assert parse_clock(clock) == pytest.approx(seconds, abs=1e-9)


def test_vtt_entities_are_unescaped_but_srt_text_is_kept() -> None:
    vtt = "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nR&amp;D &lt;3\n"
    assert parse_response(vtt.encode(), "text/vtt", "vtt").segments[0].text == "R&D <3"
    srt = "1\n00:00:00,000 --> 00:00:01,000\nR&amp;D\n"
    assert parse_response(srt.encode(), "text/plain", "srt").segments[0].text == "R&amp;D"
