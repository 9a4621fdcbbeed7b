"""Rendering: exact output for hand-built transcripts, the timestamp formatter's edges,
cue text cleaning, and round trips through the srt and webvtt-py parsers."""

from __future__ import annotations

import html
import io
import json
import re

import pytest
import srt
import webvtt
from hypothesis import given, settings
from hypothesis import strategies as st

from sttcli.transcript import Segment, Transcript, Usage, Word
from sttcli.writers import (
    Cue,
    OutputFormat,
    clean_cue_text,
    format_timestamp,
    iter_cues,
    render,
    round_time,
    to_ms,
)

WHISPER_EXTRA = {
    "seek": 0,
    "tokens": [50364, 2425, 456, 13],
    "temperature": 0.0,
    "avg_logprob": -0.25,
    "compression_ratio": 1.1,
    "no_speech_prob": 0.01,
}


def sample() -> Transcript:
    return Transcript(
        text=" Hello there. How are you? Fine & <well>",
        language="english",
        duration=3662.75,
        segments=(
            Segment(0, 0.0, 1.5, " Hello there.", WHISPER_EXTRA),
            Segment(1, 1.5004, 3.2496, " How are you?", {"seek": 150, "speaker": "A"}),
            Segment(2, 3661.0006, 3662.75, " Fine & <well>"),
        ),
        words=(
            Word("Hello", 0.0, 0.6),
            Word("there.", 0.6, 1.5),
            Word("How", 1.5004, 1.9),
        ),
    )


def transcript_of(*segments: tuple[float, float, str]) -> Transcript:
    return Transcript(
        text=" ".join(text for _, _, text in segments),
        segments=tuple(Segment(i, a, b, text) for i, (a, b, text) in enumerate(segments)),
    )


# --- OutputFormat ----------------------------------------------------------------------


def test_output_format_values_and_timestamp_needs() -> None:
    assert [f.value for f in OutputFormat] == ["json", "text", "srt", "vtt", "verbose_json"]
    assert OutputFormat("verbose_json") is OutputFormat.VERBOSE_JSON
    timed = {f for f in OutputFormat if f.needs_timestamps}
    assert timed == {OutputFormat.SRT, OutputFormat.VTT, OutputFormat.VERBOSE_JSON}
    assert OutputFormat.TEXT.extension == "txt"
    assert OutputFormat.VERBOSE_JSON.extension == "json"
    assert isinstance(OutputFormat.SRT, str)
    assert OutputFormat.SRT.value == "srt"


# --- format_timestamp ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "00:00:00,000"),
        (0.0, "00:00:00,000"),
        (0.0004, "00:00:00,000"),
        (0.0005, "00:00:00,001"),
        (0.001, "00:00:00,001"),
        (1.5, "00:00:01,500"),
        (59.9994, "00:00:59,999"),
        (59.9996, "00:01:00,000"),
        (61.25, "00:01:01,250"),
        (3599.9994, "00:59:59,999"),
        (3599.9995, "01:00:00,000"),
        (3661.001, "01:01:01,001"),
        (36000.0, "10:00:00,000"),
        (99 * 3600 + 59 * 60 + 59.999, "99:59:59,999"),
        (100 * 3600.0, "100:00:00,000"),
        (123 * 3600 + 4 * 60 + 5.0675, "123:04:05,068"),
        (-0.0004, "00:00:00,000"),
        (-1.0, "00:00:00,000"),
        (-3600.0, "00:00:00,000"),
    ],
)
def test_format_timestamp(seconds: float, expected: str) -> None:
    assert format_timestamp(seconds, decimal_marker=",") == expected
    assert format_timestamp(seconds, decimal_marker=".") == expected.replace(",", ".")


def test_rounding_happens_once_in_to_ms() -> None:
    assert to_ms(0.0005) == 1
    assert to_ms(0.0015) == 2
    assert to_ms(2.0) == 2000
    assert to_ms(-5.0) == 0
    assert round_time(1.23456) == 1.235
    assert round_time(7.300000000000001) == 7.3
    assert round_time(-0.2) == 0.0


# --- exact output, every format ----------------------------------------------------------

SAMPLE_SRT = """\
1
00:00:00,000 --> 00:00:01,500
Hello there.

2
00:00:01,500 --> 00:00:03,250
How are you?

3
01:01:01,001 --> 01:01:02,750
Fine & <well>

"""

SAMPLE_VTT = """\
WEBVTT

00:00:00.000 --> 00:00:01.500
Hello there.

00:00:01.500 --> 00:00:03.250
How are you?

01:01:01.001 --> 01:01:02.750
Fine &amp; &lt;well&gt;

"""


def test_render_srt_exact() -> None:
    assert render(sample(), OutputFormat.SRT) == SAMPLE_SRT


def test_render_vtt_exact() -> None:
    assert render(sample(), OutputFormat.VTT) == SAMPLE_VTT


def test_render_text_strips_and_ends_with_one_newline() -> None:
    assert render(sample(), OutputFormat.TEXT) == "Hello there. How are you? Fine & <well>\n"
    assert render(Transcript(text="\n  caf\u00e9  \n\n"), OutputFormat.TEXT) == "caf\u00e9\n"
    assert render(Transcript(text=""), OutputFormat.TEXT) == "\n"


def test_render_json_without_usage() -> None:
    out = render(Transcript(text="Grüße, 世界"), OutputFormat.JSON)
    assert out == '{\n  "text": "Grüße, 世界"\n}\n'


def test_render_json_with_duration_usage() -> None:
    t = Transcript(text="hi", usage=Usage(seconds=4.2) + Usage(seconds=3.1))
    assert json.loads(render(t, OutputFormat.JSON)) == {
        "text": "hi",
        "usage": {"type": "duration", "seconds": 7.3},
    }


def test_render_json_with_token_usage() -> None:
    usage = Usage(input_tokens=14, output_tokens=45, total_tokens=59, audio_tokens=10)
    out = render(Transcript(text="hi", usage=usage + Usage(text_tokens=4)), OutputFormat.JSON)
    assert json.loads(out) == {
        "text": "hi",
        "usage": {
            "type": "tokens",
            "input_tokens": 14,
            "output_tokens": 45,
            "total_tokens": 59,
            "input_token_details": {"audio_tokens": 10, "text_tokens": 4},
        },
    }


def test_token_usage_keeps_billed_seconds_when_both_are_reported() -> None:
    out = render(Transcript(text="", usage=Usage(seconds=2.5, total_tokens=3)), OutputFormat.JSON)
    assert json.loads(out)["usage"]["seconds"] == 2.5


def test_render_verbose_json_exact() -> None:
    t = sample().evolve(usage=Usage(seconds=3662.75))
    out = render(t, OutputFormat.VERBOSE_JSON)
    assert out.endswith("}\n")
    assert "\n  " in out  # indented
    body = json.loads(out)
    assert list(body) == ["task", "language", "duration", "text", "segments", "words", "usage"]
    assert body == {
        "task": "transcribe",
        "language": "english",
        "duration": 3662.75,
        "text": " Hello there. How are you? Fine & <well>",
        "segments": [
            {"id": 0, "seek": 0, "start": 0.0, "end": 1.5, "text": " Hello there."}
            | {k: v for k, v in WHISPER_EXTRA.items() if k != "seek"},
            {"id": 1, "seek": 150, "start": 1.5, "end": 3.25, "text": " How are you?"}
            | {"speaker": "A"},
            {"id": 2, "seek": 0, "start": 3661.001, "end": 3662.75, "text": " Fine & <well>"},
        ],
        "words": [
            {"word": "Hello", "start": 0.0, "end": 0.6},
            {"word": "there.", "start": 0.6, "end": 1.5},
            {"word": "How", "start": 1.5, "end": 1.9},
        ],
        "usage": {"type": "duration", "seconds": 3662.75},
    }
    first = body["segments"][0]
    assert list(first)[:5] == ["id", "seek", "start", "end", "text"]
    assert list(first)[5:] == [k for k in WHISPER_EXTRA if k != "seek"]


def test_verbose_json_omits_words_and_usage_when_absent() -> None:
    t = Transcript(text="x", language=None, duration=None, segments=(Segment(0, 0, 1, "x"),))
    body = json.loads(render(t, OutputFormat.VERBOSE_JSON))
    assert body == {
        "task": "transcribe",
        "language": None,
        "duration": None,
        "text": "x",
        "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": 1.0, "text": "x"}],
    }


def test_verbose_json_extra_cannot_override_core_fields() -> None:
    t = Transcript(text="x", segments=(Segment(3, 1.0, 2.0, "x", {"start": 99, "id": 7}),))
    segment = json.loads(render(t, OutputFormat.VERBOSE_JSON))["segments"][0]
    assert (segment["id"], segment["start"]) == (3, 1.0)


# --- cues and cleaning -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("  plain  ", "plain"),
        ("a --> b", "a -> b"),
        ("a ---> b", "a -> b"),  # one pass of replace("-->", "->") would leave "-->"
        ("-->", "->"),
        ("a --\n> b", "a -- > b"),
        ("one\n\n\ntwo\r\n  three  \r", "one two three"),
        ("one\u2028two\x85three", "one two three"),
        ("  \n\t\n  ", ""),
        ("<i>tags</i> & stuff", "<i>tags</i> & stuff"),
    ],
)
def test_clean_cue_text(raw: str, cleaned: str) -> None:
    assert clean_cue_text(raw) == cleaned


def test_empty_segments_make_no_cue_and_numbering_stays_contiguous() -> None:
    t = transcript_of((0, 1, "first"), (1, 2, "   "), (2, 3, "\n\n"), (3, 4, "fourth"))
    assert render(t, OutputFormat.SRT) == (
        "1\n00:00:00,000 --> 00:00:01,000\nfirst\n\n2\n00:00:03,000 --> 00:00:04,000\nfourth\n\n"
    )
    assert render(t, OutputFormat.VTT) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nfirst\n\n"
        "00:00:03.000 --> 00:00:04.000\nfourth\n\n"
    )


def test_cue_text_with_blank_lines_and_arrows_stays_one_cue() -> None:
    t = transcript_of((0, 1, "he said\n\n2\n00:00:05,000 --> 00:00:06,000\nhi"), (1, 2, "next"))
    subs = list(srt.parse(render(t, OutputFormat.SRT)))
    assert [s.content for s in subs] == ["he said 2 00:00:05,000 -> 00:00:06,000 hi", "next"]
    captions = webvtt.from_string(render(t, OutputFormat.VTT), strict=True).captions
    assert [html.unescape(c.raw_text) for c in captions] == [subs[0].content, "next"]


def test_zero_length_cues_last_one_millisecond() -> None:
    t = transcript_of((2.0, 2.0, "zero"), (3.0, 2.5, "backwards"), (5.0001, 5.0004, "tiny"))
    assert list(iter_cues(t)) == [
        Cue(2000, 2001, "zero"),
        Cue(3000, 3001, "backwards"),
        Cue(5000, 5001, "tiny"),
    ]
    assert "00:00:05,000 --> 00:00:05,001" in render(t, OutputFormat.SRT)
    assert len(list(srt.parse(render(t, OutputFormat.SRT)))) == 3
    assert len(webvtt.from_string(render(t, OutputFormat.VTT), strict=True).captions) == 3


def test_a_recording_without_speech_gives_valid_empty_subtitles() -> None:
    silent = Transcript(text="", segments=())
    assert render(silent, OutputFormat.SRT) == ""
    assert render(silent, OutputFormat.VTT) == "WEBVTT\n\n"
    assert list(srt.parse(render(silent, OutputFormat.SRT))) == []
    assert webvtt.from_string(render(silent, OutputFormat.VTT)).captions == []


def test_text_formats_do_not_need_segments() -> None:
    t = Transcript(text="no timestamps")
    assert render(t, OutputFormat.TEXT) == "no timestamps\n"
    assert json.loads(render(t, OutputFormat.VERBOSE_JSON))["segments"] == []


def test_vtt_cue_text_is_escaped_and_parses_back() -> None:
    t = transcript_of((0, 1, "AT&T <b>bold</b> a<b &amp;"))
    captions = webvtt.from_string(render(t, OutputFormat.VTT), strict=True).captions
    assert captions[0].raw_text == "AT&amp;T &lt;b&gt;bold&lt;/b&gt; a&lt;b &amp;amp;"
    assert captions[0].text == captions[0].raw_text  # no tags for players to eat
    assert html.unescape(captions[0].raw_text) == "AT&T <b>bold</b> a<b &amp;"


# --- property: round trips through independent parsers -----------------------------------

cue_text = st.lists(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(["\n", "\r\n", "\r", "-->", "--->", "<", ">", "&", " ", "\u2028"]),
    ),
    max_size=20,
).map("".join)


@st.composite
def timelines(draw: st.DrawFn) -> list[Segment]:
    """Ordered, non-overlapping segments at least 1.5 ms long, times with sub-ms parts."""
    cursor = draw(st.integers(0, 400 * 3600 * 1_000_000))  # microseconds, up to 400 h
    segments = []
    for i in range(draw(st.integers(1, 25))):
        cursor += draw(st.integers(0, 5_000_000))
        length = draw(st.integers(1500, 30_000_000))
        text = draw(cue_text)
        segments.append(Segment(i, cursor / 1e6, (cursor + length) / 1e6, text))
        cursor += length
    return segments


def expected_cues(segments: list[Segment]) -> list[Segment]:
    return [s for s in segments if clean_cue_text(s.text)]


def assert_times(parsed: list[tuple[float, float]], segments: list[Segment]) -> None:
    assert len(parsed) == len(segments)
    for (start, end), segment in zip(parsed, segments, strict=True):
        assert abs(start - segment.start) <= 0.0005 + 1e-9
        assert abs(end - segment.end) <= 0.0005 + 1e-9
        assert end > start
    starts = [start for start, _ in parsed]
    assert starts == sorted(starts)


@settings(max_examples=200, deadline=None)
@given(timelines())
def test_srt_round_trip_through_srt_library(segments: list[Segment]) -> None:
    out = render(Transcript(text="", segments=tuple(segments)), OutputFormat.SRT)
    subs = list(srt.parse(out))
    cues = expected_cues(segments)
    assert [s.index for s in subs] == list(range(1, len(cues) + 1))
    assert [s.content for s in subs] == [clean_cue_text(s.text) for s in cues]
    assert_times([(s.start.total_seconds(), s.end.total_seconds()) for s in subs], cues)


@settings(max_examples=200, deadline=None)
@given(timelines())
def test_vtt_round_trip_through_webvtt(segments: list[Segment]) -> None:
    out = render(Transcript(text="", segments=tuple(segments)), OutputFormat.VTT)
    captions = webvtt.from_buffer(io.StringIO(out), strict=True).captions
    cues = expected_cues(segments)
    assert [html.unescape(c.raw_text) for c in captions] == [clean_cue_text(s.text) for s in cues]
    times = [
        (c.start_time.in_milliseconds() / 1000, c.end_time.in_milliseconds() / 1000)
        for c in captions
    ]
    assert_times(times, cues)


@given(st.text())
def test_cleaned_text_is_one_safe_line_keeping_every_visible_character(raw: str) -> None:
    cleaned = clean_cue_text(raw)
    assert cleaned == cleaned.strip()
    assert "-->" not in cleaned
    assert len(cleaned.splitlines()) <= 1

    def visible(text: str) -> str:
        return "".join(re.sub(r"-{2,}>", "->", line) for line in text.split())

    assert visible(cleaned) == "".join(visible(line) for line in raw.splitlines())


@settings(max_examples=100, deadline=None)
@given(timelines(), st.sampled_from(["en", "ja", None]))
def test_json_renderers_round_trip(segments: list[Segment], language: str | None) -> None:
    words = tuple(Word(s.text, s.start, s.end) for s in segments)
    t = Transcript(
        text=" ".join(s.text for s in segments),
        language=language,
        duration=segments[-1].end,
        segments=tuple(segments),
        words=words,
        usage=Usage(seconds=segments[-1].end),
    )
    body = json.loads(render(t, OutputFormat.VERBOSE_JSON))
    assert body["text"] == t.text
    assert body["language"] == language
    assert [s["text"] for s in body["segments"]] == [s.text for s in segments]
    assert [w["word"] for w in body["words"]] == [w.word for w in words]
    for rendered, segment in zip(body["segments"], segments, strict=True):
        assert abs(rendered["start"] - segment.start) <= 0.0005 + 1e-9
        assert abs(rendered["end"] - segment.end) <= 0.0005 + 1e-9
        assert rendered["start"] == round(rendered["start"], 3)
    assert json.loads(render(t, OutputFormat.JSON)) == {
        "text": t.text,
        "usage": {"type": "duration", "seconds": round_time(segments[-1].end)},
    }
