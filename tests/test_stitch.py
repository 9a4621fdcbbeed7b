"""Stitching chunk transcripts: shifting, overlap dedupe by time, joins, and properties
over random timelines cut into random overlapping chunks."""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
import srt
import webvtt
from hypothesis import given, settings
from hypothesis import strategies as st

from sttcli.stitch import EDGE_SLACK, Part, group_words, is_unspaced, shift, single_segment, stitch
from sttcli.transcript import Segment, Transcript, Usage, Word
from sttcli.writers import OutputFormat, render


def seg(i: int, start: float, end: float, text: str, **extra: object) -> Segment:
    return Segment(i, start, end, text, extra)


def times(items: tuple[Segment, ...] | tuple[Word, ...]) -> list[tuple[float, float]]:
    return [(round(item.start, 9), round(item.end, 9)) for item in items]


# --- shift -------------------------------------------------------------------------------


def test_shift_moves_segments_words_and_seek() -> None:
    t = Transcript(
        text="a b",
        duration=30.0,
        segments=(seg(0, 0.0, 2.0, "a", seek=0, tokens=[1]), seg(1, 2.5, 4.0, "b", seek=250)),
        words=(Word("a", 0.1, 1.9), Word("b", 2.5, 4.0)),
    )
    moved = shift(t, 612.347)
    assert times(moved.segments) == [(612.347, 614.347), (614.847, 616.347)]
    assert times(moved.words) == [(612.447, 614.247), (614.847, 616.347)]
    assert [s.extra["seek"] for s in moved.segments] == [61235, 61485]  # 10 ms frames
    assert moved.segments[0].extra["tokens"] == [1]
    assert moved.duration == 30.0  # a length, not a position
    assert moved.text == "a b"
    assert t.segments[0].start == 0.0 and t.segments[0].extra["seek"] == 0  # input untouched


def test_shift_leaves_a_missing_seek_missing() -> None:
    moved = shift(Transcript(text="x", segments=(seg(0, 1.0, 2.0, "x"),)), 10.0)
    assert "seek" not in moved.segments[0].extra
    assert times(moved.segments) == [(11.0, 12.0)]


# --- stitch: joins and bookkeeping ---------------------------------------------------------


def two_plain_parts() -> list[Part]:
    a = Transcript(
        text=" Hello there. How are you?",
        language="en",
        segments=(seg(0, 0.0, 4.0, " Hello there.", seek=0), seg(1, 4.5, 9.8, " How are you?")),
        usage=Usage(seconds=10.0),
    )
    b = Transcript(
        text=" Fine, thanks.",
        language="",
        segments=(seg(0, 0.2, 5.0, " Fine, thanks.", seek=0),),
        usage=Usage(seconds=8.0),
    )
    return [Part(a, 0.0, 10.0), Part(b, 10.0, 18.0)]


def test_stitch_without_overlap_shifts_renumbers_and_joins() -> None:
    result = stitch(two_plain_parts())
    assert times(result.segments) == [(0.0, 4.0), (4.5, 9.8), (10.2, 15.0)]
    assert [s.id for s in result.segments] == [0, 1, 2]
    assert [s.extra.get("seek") for s in result.segments] == [0, None, 1000]
    assert result.text == "Hello there. How are you? Fine, thanks."
    assert result.language == "en"
    assert result.duration == 18.0  # the last part's end
    assert result.usage == Usage(seconds=18.0)
    assert result.task == "transcribe"


def test_parts_are_taken_in_time_order() -> None:
    result = stitch(list(reversed(two_plain_parts())))
    assert result.text == "Hello there. How are you? Fine, thanks."
    assert times(result.segments)[0] == (0.0, 4.0)


def test_no_parts_give_an_empty_transcript() -> None:
    assert stitch([], duration=3.0) == Transcript(text="", duration=3.0)


def test_given_duration_clamps_every_time() -> None:
    t = Transcript(
        text="a b",
        segments=(seg(0, -0.3, 1.0, "a"), seg(1, 4.0, 7.5, "b")),
        words=(Word("a", -0.3, 1.0), Word("b", 4.0, 7.5), Word("c", 7.2, 7.4)),
    )
    result = stitch([Part(t, 0.0, 7.0)], duration=6.0)
    assert result.duration == 6.0
    assert times(result.segments) == [(0.0, 1.0), (4.0, 6.0)]
    assert times(result.words) == [(0.0, 1.0), (4.0, 6.0), (6.0, 6.0)]


def test_usage_is_summed_and_none_when_nobody_reported_it() -> None:
    tokens = Usage(input_tokens=10, output_tokens=5, total_tokens=15, audio_tokens=10)
    parts = [
        Part(Transcript(text="a", usage=tokens), 0.0, 5.0),
        Part(Transcript(text="b"), 5.0, 10.0),
        Part(Transcript(text="c", usage=tokens), 10.0, 15.0),
    ]
    assert stitch(parts).usage == tokens + tokens
    assert stitch([Part(Transcript(text="a"), 0.0, 1.0)]).usage is None


def test_language_and_task_come_from_the_parts() -> None:
    parts = [
        Part(Transcript(text="a", language=None, task="translate"), 0.0, 5.0),
        Part(Transcript(text="b", language="german", task="translate"), 5.0, 10.0),
        Part(Transcript(text="c", language="english", task="translate"), 10.0, 15.0),
    ]
    result = stitch(parts)
    assert (result.language, result.task) == ("german", "translate")


def test_text_only_parts_join_with_one_space_and_keep_their_inside() -> None:
    parts = [
        Part(Transcript(text="  first  part,  spaced \n"), 0.0, 5.0),
        Part(Transcript(text=""), 5.0, 10.0),
        Part(Transcript(text="\tsecond."), 10.0, 15.0),
    ]
    result = stitch(parts)
    assert result.text == "first  part,  spaced second."
    assert result.segments == ()


@pytest.mark.parametrize("language", ["ja", "japanese", "Japanese", "zh", "chinese", "zh-TW"])
def test_unspaced_languages_join_without_a_space(language: str) -> None:
    parts = [
        Part(Transcript(text="こんにちは。 ", language=language), 0.0, 5.0),
        Part(Transcript(text=" 元気ですか", language=language), 5.0, 10.0),
    ]
    assert stitch(parts).text == "こんにちは。元気ですか"


def test_unspaced_languages_join_segments_without_a_space() -> None:
    t = Transcript(
        text="",
        language="th",
        segments=(seg(0, 0.0, 1.0, "สวัสดี"), seg(1, 1.0, 2.0, " ครับ")),
    )
    assert stitch([Part(t, 0.0, 2.0)]).text == "สวัสดีครับ"


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("ja", True),
        ("yue", True),
        ("th", True),
        ("zh_CN", True),
        ("Chinese", True),
        ("cantonese", True),
        (" burmese ", True),
        ("en", False),
        ("english", False),
        ("korean", False),
        ("", False),
        (None, False),
    ],
)
def test_is_unspaced(language: str | None, expected: bool) -> None:
    assert is_unspaced(language) is expected


# --- stitch: overlaps ----------------------------------------------------------------------


def test_a_word_heard_by_both_neighbours_appears_once() -> None:
    a = Transcript(text="x", words=(Word("one", 8.0, 9.0), Word("alpha", 10.5, 11.0)))
    b = Transcript(text="y", words=(Word("alpha", 0.5, 1.0), Word("two", 3.0, 3.5)))
    result = stitch([Part(a, 0.0, 12.0), Part(b, 10.0, 20.0)])
    assert [w.word for w in result.words] == ["one", "alpha", "two"]
    assert times(result.words) == [(8.0, 9.0), (10.5, 11.0), (13.0, 13.5)]


def kept_me_honest_parts() -> list[Part]:
    # Truth: that [9.0, 9.3] kept [9.4, 9.8] me [9.9, 10.2] honest [10.4, 11.0].
    # Chunk A is [0, 10.5] (cuts "honest"), chunk B is [9.5, 20] (cuts "kept").
    a = Transcript(
        text=" that kept me hon",
        segments=(seg(0, 9.0, 10.5, " that kept me hon", seek=900, tokens=[1, 2, 3]),),
        words=(
            Word("that", 9.0, 9.3),
            Word("kept", 9.4, 9.8),
            Word("me", 9.9, 10.2),
            Word("hon", 10.4, 10.5),
        ),
    )
    b = Transcript(
        text=" ept me honest.",
        segments=(seg(0, 0.0, 1.5, " ept me honest.", seek=0),),
        words=(Word("ept", 0.0, 0.3), Word("me", 0.4, 0.7), Word("honest.", 0.9, 1.5)),
    )
    return [Part(a, 0.0, 10.5), Part(b, 9.5, 20.0)]


def test_kept_me_me_honest_is_decided_by_time() -> None:
    result = stitch(kept_me_honest_parts())
    assert [w.word for w in result.words] == ["that", "kept", "me", "honest."]
    assert times(result.words) == [(9.0, 9.3), (9.4, 9.8), (9.9, 10.2), (10.4, 11.0)]
    assert result.text == "that kept me honest."
    # Both segments crossed the split time (the middle of the widest word gap, 10.3):
    # each was cut there and its text rebuilt from the words it kept.
    assert times(result.segments) == [(9.0, 10.3), (10.3, 11.0)]
    assert [s.text for s in result.segments] == ["that kept me", "honest."]
    assert "tokens" not in result.segments[0].extra  # no longer the segment's tokens
    assert result.segments[0].extra["seek"] == 900


def test_segments_without_words_are_split_in_the_silence_between_them() -> None:
    # Overlap [9, 11]; both sides hear a pause from 9.5 to 10.0.
    a = Transcript(
        text="",
        segments=(seg(0, 6.0, 9.5, " first sentence."), seg(1, 10.0, 11.0, " sec")),
    )
    b = Transcript(
        text="",
        segments=(seg(0, 0.0, 0.5, " ence."), seg(1, 1.0, 3.0, " second sentence.")),
    )
    result = stitch([Part(a, 0.0, 11.0), Part(b, 9.0, 20.0)])
    assert [s.text for s in result.segments] == [" first sentence.", " second sentence."]
    assert times(result.segments) == [(6.0, 9.5), (10.0, 12.0)]
    assert result.text == "first sentence. second sentence."


def test_segments_covering_the_whole_overlap_are_kept_and_clipped() -> None:
    # No gap anywhere in the overlap [10, 12]: the split falls in its middle, each
    # segment's midpoint is on its own side, and the earlier one is clipped.
    a = Transcript(text="", segments=(seg(0, 0.0, 12.0, "left"),))
    b = Transcript(text="", segments=(seg(0, 0.0, 10.0, "right"),))
    result = stitch([Part(a, 0.0, 12.0), Part(b, 10.0, 20.0)])
    assert times(result.segments) == [(0.0, 10.0), (10.0, 20.0)]
    assert result.text == "left right"


def test_a_fragment_cut_by_the_chunk_edge_is_dropped_for_the_whole_word() -> None:
    # "hello" [4.8, 5.4] is cut by A's end at 5.2; B (from 4.5) hears it whole.
    a = Transcript(text="", words=(Word("say", 4.0, 4.5), Word("hel", 4.8, 5.2)))
    b = Transcript(text="", words=(Word("hello", 0.3, 0.9), Word("there", 1.0, 1.4)))
    result = stitch([Part(a, 0.0, 5.2), Part(b, 4.5, 10.0)])
    assert [w.word for w in result.words] == ["say", "hello", "there"]


# --- single_segment and group_words ------------------------------------------------------------


def test_single_segment_makes_one_cue_from_measured_speech() -> None:
    piece = single_segment(Transcript(text="  Good morning.  ", language="en"), 0.25, 2.5)
    assert piece.segments == (Segment(0, 0.25, 2.5, "Good morning."),)
    assert piece.text == "  Good morning.  " and piece.language == "en"
    result = stitch([Part(piece, 60.0, 63.0)])
    assert times(result.segments) == [(60.25, 62.5)]
    assert render(result, OutputFormat.SRT) == (
        "1\n00:01:00,250 --> 00:01:02,500\nGood morning.\n\n"
    )


def test_single_segment_of_empty_text_has_no_segment() -> None:
    assert single_segment(Transcript(text=" \n"), 0.0, 1.0).segments == ()


def test_single_segment_rejects_an_end_before_the_start() -> None:
    with pytest.raises(ValueError, match="ends before it starts"):
        single_segment(Transcript(text="x"), 2.0, 1.0)


def test_group_words_by_midpoint_then_nearest() -> None:
    s0, s1, s2 = seg(0, 1.0, 3.0, "a"), seg(1, 3.0, 5.0, "b"), seg(2, 8.0, 9.0, "c")
    words = (
        Word("early", 0.0, 0.5),  # before every segment: the first
        Word("in0", 1.0, 2.0),
        Word("leans1", 2.5, 3.6),  # midpoint 3.05, inside s1
        Word("gap-near1", 5.1, 5.5),  # in the gap, nearer s1
        Word("gap-near2", 7.0, 7.8),  # in the gap, nearer s2
        Word("late", 10.0, 11.0),  # after every segment: the last
    )
    groups = group_words(Transcript(text="", segments=(s0, s1, s2), words=words))
    assert [(s.id, [w.word for w in ws]) for s, ws in groups] == [
        (0, ["early", "in0"]),
        (1, ["leans1", "gap-near1"]),
        (2, ["gap-near2", "late"]),
    ]


def test_group_words_keeps_empty_segments_and_needs_segments() -> None:
    s0, s1 = seg(0, 0.0, 1.0, "a"), seg(1, 5.0, 6.0, "b")
    groups = group_words(Transcript(text="", segments=(s0, s1), words=(Word("x", 0.2, 0.4),)))
    assert groups == [(s0, (Word("x", 0.2, 0.4),)), (s1, ())]
    assert group_words(Transcript(text="", words=(Word("x", 0.0, 1.0),))) == []


@given(
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 2_000)), min_size=1, max_size=8),
    st.lists(st.tuples(st.integers(-500, 12_000), st.integers(0, 500)), max_size=30),
)
def test_group_words_assigns_every_word_exactly_once(
    raw_segments: list[tuple[int, int]], raw_words: list[tuple[int, int]]
) -> None:
    cursor, segments = 0, []
    for i, (gap, length) in enumerate(raw_segments):
        segments.append(seg(i, (cursor + gap) / 100, (cursor + gap + length) / 100, f"s{i}"))
        cursor += gap + length
    words = tuple(Word(f"w{i}", a / 100, (a + n) / 100) for i, (a, n) in enumerate(raw_words))
    groups = group_words(Transcript(text="", segments=tuple(segments), words=words))
    assert [s for s, _ in groups] == segments
    assert sorted(w.word for _, ws in groups for w in ws) == sorted(w.word for w in words)
    for segment, group in groups:
        for word in group:
            mid = (word.start + word.end) / 2
            distance = max(segment.start - mid, mid - segment.end, 0.0)
            assert all(distance <= max(s.start - mid, mid - s.end, 0.0) for s in segments)


# --- property: random timelines cut into random overlapping chunks ----------------------------

US = 1_000_000  # generated times are integer microseconds


@dataclass(frozen=True)
class Truth:
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Scenario:
    words: list[Truth]
    sentences: list[Truth]  # consecutive runs of words; text = the words joined
    windows: list[tuple[int, int]]
    total: int
    mode: str  # "words", "segments" or "both"
    rounded: bool  # chunk-relative times rounded to 1 ms, as endpoints answer them

    def full_somewhere(self, item: Truth) -> bool:
        """Heard whole, and clear of the chunk's inner edges by more than an endpoint's
        rounding: closer than EDGE_SLACK, whole and cut-by-the-edge look the same."""
        margin = int(EDGE_SLACK * US)
        return any(
            (lo == 0 or lo + margin < item.start) and (hi == self.total or item.end < hi - margin)
            for lo, hi in self.windows
        )


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    cursor, words = 0, []
    for i in range(draw(st.integers(1, 30))):
        cursor += draw(st.one_of(st.just(0), st.integers(0, 1_500_000)))
        length = draw(st.integers(2_000, 1_500_000))
        words.append(Truth(f"w{i}", cursor, cursor + length))
        cursor += length
    total = cursor + draw(st.integers(0, 2_000_000))
    breaks = sorted(draw(st.sets(st.integers(1, len(words) - 1))) if len(words) > 1 else [])
    runs = [words[a:b] for a, b in zip([0, *breaks], [*breaks, len(words)], strict=True)]
    sentences = [Truth(" ".join(w.text for w in r), r[0].start, r[-1].end) for r in runs]
    cuts = sorted(draw(st.sets(st.integers(1, total - 1), max_size=5)))
    bounds = [0, *cuts, total]
    befores, afters = [0], []
    extent = st.one_of(st.just(0), st.integers(0, 100))  # percent of the room available
    for j in range(1, len(bounds) - 1):
        half_left = (bounds[j] - bounds[j - 1]) // 2 - 1
        half_right = (bounds[j + 1] - bounds[j]) // 2 - 1
        befores.append(max(0, half_left) * draw(extent) // 100)
        afters.append(max(0, half_right) * draw(extent) // 100)
    afters.append(0)
    windows = [(bounds[j] - befores[j], bounds[j + 1] + afters[j]) for j in range(len(bounds) - 1)]
    mode = draw(st.sampled_from(["words", "segments", "both"]))
    return Scenario(words, sentences, windows, total, mode, draw(st.booleans()))


def heard(item: Truth, lo: int, hi: int, rounded: bool = False) -> tuple[bool, float, float] | None:
    """What a chunk [lo, hi] hears of an item: (whole?, start, end) relative to the chunk,
    or None. Items straddling the chunk's edge are cut there: fragments."""
    start, end = max(item.start, lo), min(item.end, hi)
    if start >= end:
        return None
    relative = ((start - lo) / US, (end - lo) / US)
    if rounded:
        relative = (round(relative[0], 3), round(relative[1], 3))
    return item.start >= lo and item.end <= hi, *relative


def part_for(scenario: Scenario, lo: int, hi: int) -> Part:
    words: list[Word] = []
    segments: list[Segment] = []
    for w in scenario.words:
        if (h := heard(w, lo, hi, scenario.rounded)) is not None:
            words.append(Word(w.text if h[0] else w.text + "~", h[1], h[2]))
    for s in scenario.sentences:
        if (h := heard(s, lo, hi, scenario.rounded)) is not None:
            segments.append(Segment(len(segments), h[1], h[2], s.text if h[0] else "#frag"))
    t = Transcript(
        text=" ".join(w.word for w in words),
        language="en",
        segments=tuple(segments) if scenario.mode != "words" else (),
        words=tuple(words) if scenario.mode != "segments" else (),
    )
    return Part(t, lo / US, hi / US)


def assert_ordered(items: Sequence[Segment | Word], duration: float) -> None:
    for item in items:
        assert 0.0 <= item.start <= item.end <= duration
    for earlier, later in itertools.pairwise(items):
        assert earlier.end <= later.start


def assert_same(
    actual: Sequence[Word | Segment], expected: list[Truth], tolerance: float = 1e-6
) -> None:
    got = [w.word if isinstance(w, Word) else w.text for w in actual]
    assert got == [e.text for e in expected]
    for item, truth in zip(actual, expected, strict=True):
        assert abs(item.start - truth.start / US) <= tolerance
        assert abs(item.end - truth.end / US) <= tolerance


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_stitching_random_chunks_loses_and_duplicates_nothing(scenario: Scenario) -> None:
    parts = [part_for(scenario, lo, hi) for lo, hi in scenario.windows]
    duration = scenario.total / US
    result = stitch(parts, duration=duration)
    tolerance = 0.0011 if scenario.rounded else 1e-6

    assert result.duration == duration
    assert [s.id for s in result.segments] == list(range(len(result.segments)))
    assert_ordered(result.words, duration)
    assert_ordered(result.segments, duration)
    lost_words = {w.text for w in scenario.words if not scenario.full_somewhere(w)}
    lost_sentences = [s for s in scenario.sentences if not scenario.full_somewhere(s)]

    if scenario.mode != "segments":
        # Every word some chunk clearly heard whole appears exactly once, in order, at its
        # time; words no chunk clearly heard whole may appear whole once, or as fragments.
        clear = [w for w in scenario.words if scenario.full_somewhere(w)]
        whole = [w for w in result.words if not w.word.endswith("~")]
        assert_same([w for w in whole if w.word not in lost_words], clear, tolerance)
        assert len({w.word for w in whole}) == len(whole), "a word appears twice"
        assert {w.word[:-1] for w in result.words if w.word.endswith("~")} <= lost_words

    if scenario.mode != "words":
        full = {s.text for s in scenario.sentences if scenario.full_somewhere(s)}
        assert_same(
            [s for s in result.segments if s.text in full],
            [s for s in scenario.sentences if scenario.full_somewhere(s)],
            tolerance,
        )
        for other in (s for s in result.segments if s.text not in full):
            # a fragment, or a piece cut from a sentence no chunk heard whole
            tokens = {token.rstrip("~") for token in other.text.split()}
            assert other.text == "#frag" or any(
                tokens <= set(s.text.split()) for s in lost_sentences
            )
        assert result.text == " ".join(s.text for s in result.segments)
        srt_cues = list(srt.parse(render(result, OutputFormat.SRT)))
        vtt_cues = webvtt.from_buffer(io.StringIO(render(result, OutputFormat.VTT)), strict=True)
        assert [c.content for c in srt_cues] == [s.text for s in result.segments]
        assert [c.text for c in vtt_cues.captions] == [s.text for s in result.segments]
    else:
        assert result.text == " ".join(p.transcript.text for p in parts if p.transcript.text)


def test_a_fragment_rounded_short_of_the_chunk_edge_is_still_dropped() -> None:
    """Endpoints round times: a word cut by chunk 0's end at 54.3783 s comes back ending
    at 54.378, and segments spanning the whole overlap leave only that sliver as a gap."""
    first = Transcript(
        text="tango india",
        segments=(seg(0, 51.4, 54.378, " tango india"),),
        words=(Word("tango", 53.848, 54.3), Word("india", 54.367, 54.378)),
    )
    second = Transcript(
        text="tango india india foxtrot",
        segments=(seg(0, 1.47, 3.056, " tango india india foxtrot"),),
        words=(Word("tango", 1.47, 1.921), Word("india", 1.989, 2.354),
               Word("india", 2.423, 2.699), Word("foxtrot", 2.755, 3.056)),
    )  # fmt: skip
    result = stitch([Part(first, 0.0, 54.3783125), Part(second, 52.3783125, 60.0)])
    assert [w.word for w in result.words] == ["tango", "india", "india", "foxtrot"]
    assert result.text == "tango india india foxtrot"
