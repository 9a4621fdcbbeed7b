"""The test gateway itself: it must hear what audiogen wrote, and answer like the real APIs."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import srt
import webvtt

import audiogen
from audiogen import Burst
from gateway import DEFAULT_MODELS, FakeGateway, Word, mask_key, segment_words

API_KEY = "sk-test-SECRET-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
TOLERANCE = 0.005  # seconds: the gateway's own timing accuracy


_shared: list[httpx.Client] = []


@pytest.fixture(scope="module", autouse=True)
def shared_client() -> Iterator[httpx.Client]:
    """One keep-alive client for the module's requests (cheaper than httpx.post)."""
    with httpx.Client(timeout=30) as client:
        _shared.append(client)
        yield client
        _shared.clear()


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway-audio")


@pytest.fixture(scope="module")
def short(audio_dir: Path) -> tuple[Path, list[Burst]]:
    """6 s, 16 kHz mono WAV with a few phrases."""
    return audiogen.speech_file(audio_dir / "short.wav", 6.0, seed=3)


@pytest.fixture(scope="module")
def variants(audio_dir: Path, short: tuple[Path, list[Burst]]) -> dict[str, Path]:
    _, bursts = short
    mp3 = ["-c:a", "libmp3lame", "-b:a", "64k"]
    return {
        "wav16k": short[0],
        "mp3-64k": audiogen.write_recording(audio_dir / "s.mp3", bursts, 6.0, codec_args=mp3),
        "wav44k-stereo": audiogen.write_recording(
            audio_dir / "s44.wav", bursts, 6.0, rate=44100, channels=2
        ),
        "ogg-opus": audiogen.write_recording(
            audio_dir / "s.ogg", bursts, 6.0, codec_args=["-c:a", "libopus"]
        ),
        "flac": audiogen.write_recording(audio_dir / "s.flac", bursts, 6.0),
    }


def post(
    gw: FakeGateway,
    path: Path | None,
    *,
    model: str | None = "whisper-1",
    fmt: str | None = None,
    granularities: Sequence[str] = (),
    headers: dict[str, str] | None = None,
    filename: str | None = None,
    content: bytes | None = None,
    endpoint: str = "transcriptions",
    client: httpx.Client | None = None,
    **fields: str,
) -> httpx.Response:
    data: dict[str, Any] = dict(fields)
    if model is not None:
        data["model"] = model
    if fmt is not None:
        data["response_format"] = fmt
    if granularities:
        data["timestamp_granularities[]"] = list(granularities)
    files = None
    if path is not None or content is not None:
        body = content if content is not None else path.read_bytes()  # type: ignore[union-attr]
        files = {"file": (filename or path.name, body)}  # type: ignore[union-attr]
    url = f"{gw.base_url}/audio/{endpoint}"
    sender = client or (_shared[0] if _shared else httpx)
    return sender.post(url, headers=AUTH if headers is None else headers, data=data,
                       files=files, timeout=30)  # fmt: skip


def clock(stamp: str) -> float:
    hours, minutes, seconds = stamp.replace(",", ".").split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def assert_words_match(words: Sequence[dict[str, Any]], bursts: Sequence[Burst]) -> None:
    assert [w["word"] for w in words] == [b.word for b in bursts]
    for w, b in zip(words, bursts, strict=True):
        assert abs(w["start"] - b.start) < TOLERANCE, (w, b)
        assert abs(w["end"] - b.end) < TOLERANCE, (w, b)


# --------------------------------------------------------------------------- formats


def test_json_is_the_text_heard(gateway: FakeGateway, short: tuple[Path, list[Burst]]) -> None:
    path, bursts = short
    r = post(gateway, path)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-request-id"].startswith("req_")
    assert r.json() == {"text": " ".join(b.word for b in bursts)}


def test_text_is_plain(gateway: FakeGateway, short: tuple[Path, list[Burst]]) -> None:
    path, bursts = short
    r = post(gateway, path, fmt="text")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text == " ".join(b.word for b in bursts) + "\n"


def test_verbose_json_shape(gateway: FakeGateway, short: tuple[Path, list[Burst]]) -> None:
    path, bursts = short
    body = post(gateway, path, fmt="verbose_json", temperature="0.2").json()
    assert body["task"] == "transcribe"
    assert body["language"] == "english"
    assert body["duration"] == pytest.approx(6.0, abs=0.001)
    assert body["text"] == " ".join(b.word for b in bursts)
    assert "words" not in body and "usage" not in body
    keys = {"id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob",
            "compression_ratio", "no_speech_prob"}  # fmt: skip
    segments = body["segments"]
    assert segments
    for i, seg in enumerate(segments):
        assert set(seg) == keys
        assert seg["id"] == i
        assert seg["text"].startswith(" ") and seg["text"] == seg["text"].rstrip()
        assert seg["temperature"] == 0.2
        assert seg["start"] < seg["end"]
    assert " ".join(s["text"].strip() for s in segments) == body["text"]
    assert segments[0]["start"] == pytest.approx(bursts[0].start, abs=TOLERANCE)
    assert segments[-1]["end"] == pytest.approx(bursts[-1].end, abs=TOLERANCE)


@pytest.mark.parametrize(
    ("granularities", "has_segments", "has_words"),
    [((), True, False), (("segment",), True, False), (("word",), False, True),
     (("word", "segment"), True, True)],
)  # fmt: skip
def test_granularities(
    gateway: FakeGateway,
    short: tuple[Path, list[Burst]],
    granularities: tuple[str, ...],
    has_segments: bool,
    has_words: bool,
) -> None:
    body = post(gateway, short[0], fmt="verbose_json", granularities=granularities).json()
    assert ("segments" in body) is has_segments
    assert ("words" in body) is has_words
    if has_words:
        assert set(body["words"][0]) == {"word", "start", "end"}
    assert gateway.requests[-1].granularities == list(granularities)


def test_srt_and_vtt_render_the_segments(
    gateway: FakeGateway, short: tuple[Path, list[Burst]]
) -> None:
    path, _ = short
    segments = post(gateway, path, fmt="verbose_json").json()["segments"]
    r = post(gateway, path, fmt="srt")
    assert r.status_code == 200
    cues = list(srt.parse(r.text))
    assert len(cues) == len(segments)
    for cue, seg in zip(cues, segments, strict=True):
        assert cue.start.total_seconds() == pytest.approx(seg["start"], abs=0.0011)
        assert cue.end.total_seconds() == pytest.approx(seg["end"], abs=0.0011)
        assert cue.content == seg["text"].strip()
    assert re.match(r"1\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n", r.text)

    r = post(gateway, path, fmt="vtt")
    assert r.status_code == 200
    assert r.text.startswith("WEBVTT\n\n")
    captions = webvtt.from_string(r.text)
    assert [c.text for c in captions] == [s["text"].strip() for s in segments]
    for caption, seg in zip(captions, segments, strict=True):
        assert clock(caption.start) == pytest.approx(seg["start"], abs=0.0011)
        assert clock(caption.end) == pytest.approx(seg["end"], abs=0.0011)


def test_usage_switch(gateway: FakeGateway, short: tuple[Path, list[Burst]]) -> None:
    path, bursts = short
    gateway.usage = "duration"
    assert post(gateway, path).json()["usage"] == {"type": "duration", "seconds": 6.0}
    gateway.usage = "tokens"
    usage = post(gateway, path, model="gpt-4o-transcribe", prompt="two words").json()["usage"]
    assert usage["type"] == "tokens"
    details = usage["input_token_details"]
    assert details == {"audio_tokens": 60, "text_tokens": 2}
    assert usage["input_tokens"] == 62 and usage["output_tokens"] == len(bursts)
    assert usage["total_tokens"] == 62 + len(bursts)
    gateway.usage = None
    assert "usage" not in post(gateway, path, fmt="verbose_json").json()


# --------------------------------------------------------------------------- hearing


@pytest.mark.parametrize("variant", ["wav16k", "mp3-64k", "wav44k-stereo", "ogg-opus", "flac"])
def test_word_times_within_5ms(
    gateway: FakeGateway,
    variants: dict[str, Path],
    short: tuple[Path, list[Burst]],
    variant: str,
) -> None:
    r = post(gateway, variants[variant], fmt="verbose_json", granularities=["word"])
    assert r.status_code == 200, r.text
    assert_words_match(r.json()["words"], short[1])


def test_session_speech_wav(gateway: FakeGateway, speech_wav: tuple[Path, list[Burst]]) -> None:
    path, bursts = speech_wav
    body = post(gateway, path, fmt="verbose_json", granularities=["word"]).json()
    assert_words_match(body["words"], bursts)
    assert gateway.requests[-1].duration == pytest.approx(20.0)
    assert [w.word for w in gateway.requests[-1].words] == [b.word for b in bursts]


def test_every_word_is_told_apart(gateway: FakeGateway, audio_dir: Path) -> None:
    bursts = [Burst(0.3 + 0.35 * i, 0.3 + 0.35 * i + 0.2, w) for i, w in enumerate(audiogen.WORDS)]
    path = audiogen.write_recording(audio_dir / "all.wav", bursts, bursts[-1].end + 0.5)
    words = post(gateway, path, fmt="verbose_json", granularities=["word"]).json()["words"]
    assert_words_match(words, bursts)


def test_fragments_cut_by_the_file_edges(gateway: FakeGateway, audio_dir: Path) -> None:
    # a burst already sounding at 0 s, and one still sounding when the file ends
    bursts = [Burst(-0.1, 0.15, "kilo"), Burst(0.6, 0.9, "lima"), Burst(1.8, 2.3, "mike")]
    path = audiogen.write_recording(audio_dir / "cut.wav", bursts, 2.0)
    words = post(gateway, path, fmt="verbose_json", granularities=["word"]).json()["words"]
    expected = [Burst(0.0, 0.15, "kilo"), bursts[1], Burst(1.8, 2.0, "mike")]
    assert_words_match(words, expected)


def test_segments_split_at_pauses_and_at_10_seconds(gateway: FakeGateway, audio_dir: Path) -> None:
    bursts = audiogen.continuous_schedule(14.0, seed=5)  # no gap reaches 0.5 s
    bursts.append(Burst(14.8, 15.1, "xray"))  # after a pause of over 0.5 s
    path = audiogen.write_recording(audio_dir / "long.wav", bursts, 15.5)
    body = post(gateway, path, fmt="verbose_json", granularities=["word", "segment"]).json()
    assert_words_match(body["words"], bursts)
    segments = body["segments"]
    assert len(segments) == 3
    first, second, third = segments
    assert first["end"] - first["start"] >= 10.0
    assert first["end"] - first["start"] < 10.0 + 0.5 + 0.07  # closed on reaching 10 s
    assert second["start"] > first["end"]
    assert third["text"] == " xray"
    assert third["start"] == pytest.approx(14.8, abs=TOLERANCE)


def test_segment_words_rules() -> None:
    w = [Word("a", 0.0, 0.2), Word("b", 0.6, 0.8), Word("c", 1.4, 1.5)]
    assert [len(s) for s in segment_words(w)] == [2, 1]  # 0.4 s gap joins, 0.6 s splits
    many = [Word("a", i * 0.3, i * 0.3 + 0.2) for i in range(50)]  # 15 s, tiny gaps
    groups = segment_words(many)
    assert all(g[-1].end - g[0].start < 10.3 for g in groups)
    assert groups[0][-1].end - groups[0][0].start >= 10.0
    assert sum(len(g) for g in groups) == 50


# --------------------------------------------------------------------------- model rules


@pytest.mark.parametrize("fmt", ["verbose_json", "srt", "vtt"])
def test_gpt4o_refuses_timestamp_formats(
    gateway: FakeGateway, short: tuple[Path, list[Burst]], fmt: str
) -> None:
    r = post(gateway, short[0], model="gpt-4o-transcribe", fmt=fmt)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == "response_format"
    assert error["code"] == "unsupported_value"
    assert error["type"] == "invalid_request_error"
    assert fmt in error["message"]


def test_gpt4o_duration_cap_is_stated_in_seconds(short: tuple[Path, list[Burst]]) -> None:
    assert DEFAULT_MODELS["gpt-4o-transcribe"].max_seconds == 1400
    models = dict(DEFAULT_MODELS)
    models["gpt-4o-transcribe"] = dataclasses.replace(models["gpt-4o-transcribe"], max_seconds=5)
    with FakeGateway(api_key=API_KEY, models=models) as gw:
        r = post(gw, short[0], model="gpt-4o-transcribe")
        assert r.status_code == 400
        error = r.json()["error"]
        assert error["code"] == "invalid_value"
        match = re.search(r"maximum for this model is (\d+(?:\.\d+)?) seconds", error["message"])
        assert match and float(match.group(1)) == 5
        assert post(gw, short[0], model="gpt-4o-mini-transcribe").json()["text"]


def test_groq_models(gateway: FakeGateway, short: tuple[Path, list[Burst]]) -> None:
    assert post(gateway, short[0], model="whisper-large-v3", fmt="verbose_json").status_code == 200
    r = post(gateway, short[0], model="whisper-large-v3-turbo", fmt="srt")
    assert r.status_code == 400 and r.json()["error"]["param"] == "response_format"


def test_unknown_model_is_404(gateway: FakeGateway, short: tuple[Path, list[Burst]]) -> None:
    r = post(gateway, short[0], model="whisper-9")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "model_not_found"
    assert "whisper-9" in r.json()["error"]["message"]


def test_translations(gateway: FakeGateway, short: tuple[Path, list[Burst]]) -> None:
    path, bursts = short
    r = post(gateway, path, fmt="verbose_json", endpoint="translations")
    assert r.status_code == 200
    assert r.json()["task"] == "translate" and r.json()["language"] == "english"
    assert r.json()["text"] == " ".join(b.word for b in bursts)
    r = post(gateway, path, model="gpt-4o-transcribe", endpoint="translations")
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"


def test_bad_parameters(gateway: FakeGateway, short: tuple[Path, list[Burst]]) -> None:
    path, _ = short
    assert post(gateway, path, language="english").json()["error"]["param"] == "language"
    assert post(gateway, path, language="fr").status_code == 200
    assert post(gateway, path, temperature="3").json()["error"]["param"] == "temperature"
    assert post(gateway, path, fmt="docx").json()["error"]["code"] == "invalid_value"
    r = post(gateway, path, fmt="verbose_json", granularities=["letter"])
    assert r.status_code == 400
    assert post(gateway, path, model=None).json()["error"]["param"] == "model"
    r = httpx.post(
        gateway.transcriptions_url,
        headers=AUTH,
        data={"model": "whisper-1"},
        files={"attachment": ("a.wav", b"x")},
    )  # multipart, but no `file`
    assert r.status_code == 400 and r.json()["error"]["param"] == "file"
    r = httpx.post(gateway.transcriptions_url, headers=AUTH, data={"model": "whisper-1"})
    assert r.status_code == 400 and "multipart" in r.json()["error"]["message"]
    assert gateway.requests[1].fields["language"] == ["fr"]


def test_streaming_for_gpt4o(gateway: FakeGateway, short: tuple[Path, list[Burst]]) -> None:
    path, bursts = short
    r = post(gateway, path, model="gpt-4o-mini-transcribe", stream="true")
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == {"type": "transcript.text.done", "text": " ".join(b.word for b in bursts)}
    assert post(gateway, path, stream="true").status_code == 400  # whisper-1


# --------------------------------------------------------------------------- files


@pytest.mark.parametrize(
    ("source", "name"),
    [("mp3-64k", "audio.wav"), ("ogg-opus", "audio.mp3"), ("wav16k", "audio.flac"),
     ("wav16k", "audio.txt"), ("wav16k", "noextension")],
)  # fmt: skip
def test_content_must_match_extension(
    gateway: FakeGateway, variants: dict[str, Path], source: str, name: str
) -> None:
    r = post(gateway, variants[source], filename=name)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["message"].startswith("Invalid file format")
    assert error["param"] == "file"


def test_undecodable_and_tiny_files(gateway: FakeGateway, variants: dict[str, Path]) -> None:
    r = post(gateway, None, content=b"RIFF" + b"\x00" * 40, filename="broken.wav")
    assert r.status_code == 400 and "Invalid file format" in r.json()["error"]["message"]
    gateway.strict_extension = False
    r = post(gateway, None, content=b"\x00\x01" * 500, filename="junk.mp3")
    assert r.status_code == 400 and "Invalid file format" in r.json()["error"]["message"]
    assert post(gateway, variants["mp3-64k"], filename="mislabelled.wav").status_code == 200
    silence = variants["wav16k"].read_bytes()[: 44 + 1000]  # header + 31 ms: too short
    r = post(gateway, None, content=silence, filename="tiny.wav")
    assert r.status_code == 400 and r.json()["error"]["code"] == "audio_too_short"


# --------------------------------------------------------------------------- auth


def test_wrong_key_is_401_with_masked_key(
    gateway: FakeGateway, short: tuple[Path, list[Burst]]
) -> None:
    wrong = "sk-proj-WRONG-abcdefghijklmnop"
    r = post(gateway, short[0], headers={"Authorization": f"Bearer {wrong}"})
    assert r.status_code == 401
    error = r.json()["error"]
    assert error["code"] == "invalid_api_key"
    assert error["message"].startswith(f"Incorrect API key provided: {mask_key(wrong)}")
    assert "sk-" + "*" * (len(wrong) - 7) + "mnop" == mask_key(wrong)
    assert wrong not in r.text and "WRONG" not in r.text
    r = post(gateway, short[0], headers={})
    assert r.status_code == 401 and "didn't provide an API key" in r.json()["error"]["message"]
    assert gateway.requests[0].status == 401


def test_azure_style_key_header(gateway_factory: Any, short: tuple[Path, list[Burst]]) -> None:
    gw = gateway_factory(auth_header="api-key", auth_scheme=None, prefix="/openai/deployments/w",
                         default_model="whisper-1")  # fmt: skip
    assert gw.base_url.endswith("/openai/deployments/w")
    r = post(gw, short[0], model=None, headers={"api-key": API_KEY})
    assert r.status_code == 200
    assert post(gw, short[0], headers=AUTH).status_code == 401


# --------------------------------------------------------------------------- limits, faults


def test_upload_cap_is_413(gateway: FakeGateway, short: tuple[Path, list[Burst]]) -> None:
    size = short[0].stat().st_size
    assert gateway.upload_cap == 25 * 1024 * 1024
    gateway.upload_cap = size - 1
    with httpx.Client() as client:
        r = post(gateway, short[0], client=client)
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "payload_too_large"
        assert str(size - 1) in r.json()["error"]["message"]
        gateway.upload_cap = size
        assert post(gateway, short[0], client=client).status_code == 200  # same connection
    assert [rec.file_bytes for rec in gateway.requests] == [size, size]


def test_injected_429_then_success(gateway: FakeGateway, short: tuple[Path, list[Burst]]) -> None:
    gateway.inject(429, times=2, headers={"Retry-After": "2", "retry-after-ms": "1500"})
    for _ in range(2):
        r = post(gateway, short[0])
        assert r.status_code == 429
        assert r.headers["retry-after"] == "2" and r.headers["retry-after-ms"] == "1500"
        assert r.json()["error"]["code"] == "rate_limit_exceeded"
    assert gateway.pending_faults == 0
    assert post(gateway, short[0]).status_code == 200
    assert [(r.status, r.fault) for r in gateway.requests] == [
        (429, "inject"), (429, "inject"), (200, None),
    ]  # fmt: skip


def test_injected_5xx_and_custom_body(
    gateway: FakeGateway, short: tuple[Path, list[Burst]]
) -> None:
    gateway.inject(500)
    gateway.inject(502)
    gateway.inject(503, body={"error": {"message": "custom"}})
    assert post(gateway, short[0]).status_code == 500
    assert post(gateway, short[0]).status_code == 502
    r = post(gateway, short[0])
    assert r.status_code == 503 and r.json() == {"error": {"message": "custom"}}
    assert post(gateway, short[0]).status_code == 200


def test_fault_for_matching_requests_only(
    gateway: FakeGateway, short: tuple[Path, list[Burst]]
) -> None:
    gateway.inject(500, when=lambda rec: rec.model == "gpt-4o-transcribe")
    assert post(gateway, short[0]).status_code == 200
    assert post(gateway, short[0], model="gpt-4o-transcribe").status_code == 500


def test_dropped_connection(gateway: FakeGateway, short: tuple[Path, list[Burst]]) -> None:
    gateway.drop_connection()
    with pytest.raises(httpx.TransportError):
        post(gateway, short[0])
    assert post(gateway, short[0]).status_code == 200
    first = gateway.requests[0]
    assert first.status is None and first.fault == "drop"
    assert first.file_bytes == short[0].stat().st_size


def test_max_in_flight_and_latency(gateway_factory: Any, short: tuple[Path, list[Burst]]) -> None:
    gw = gateway_factory(latency=0.3)
    results: list[int] = []

    def one() -> None:
        results.append(post(gw, short[0]).status_code)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == [200] * 4
    assert gw.max_in_flight == 4
    assert all(r.answered - r.received >= 0.3 for r in gw.requests)  # type: ignore[operator]
    gw.reset()
    assert gw.requests == [] and gw.max_in_flight == 0
    gw.latency = 0.0
    gw.latency_per_audio_second = 0.05
    started = time.monotonic()
    assert post(gw, short[0]).status_code == 200
    assert time.monotonic() - started >= 0.3  # 6 s of audio x 0.05
    assert gw.max_in_flight == 1


# --------------------------------------------------------------------------- records


def test_request_record(gateway: FakeGateway, short: tuple[Path, list[Burst]]) -> None:
    post(gateway, short[0], fmt="verbose_json", granularities=["word", "segment"],
         headers={**AUTH, "X-Custom": "yes"}, prompt="hello", filename="my talk.wav")  # fmt: skip
    rec = gateway.requests[0]
    assert rec.method == "POST" and rec.path == "/v1/audio/transcriptions"
    assert (
        rec.headers["x-custom"] == "yes" and rec.headers["authorization"] == AUTH["Authorization"]
    )
    assert rec.fields["model"] == ["whisper-1"]
    assert rec.fields["timestamp_granularities[]"] == ["word", "segment"]
    assert rec.field("prompt") == "hello" and rec.response_format == "verbose_json"
    assert rec.filename == "my talk.wav"
    assert rec.file_bytes == short[0].stat().st_size and rec.sha256
    assert rec.duration == pytest.approx(6.0)
    assert rec.status == 200 and rec.answered is not None and rec.answered >= rec.received
    assert json.loads(rec.response)["text"]


def test_chunked_upload_and_handmade_multipart(
    gateway: FakeGateway, short: tuple[Path, list[Burst]]
) -> None:
    boundary = "XyZ-boundary"
    audio = short[0].read_bytes()
    parts = [
        b"preamble to ignore\r\n",
        f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n',
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="a \\"quoted\\" name.wav"\r\nContent-Type: audio/wav\r\n\r\n',
        audio,
        f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=extra\r\n\r\nv\r\n",
        f"--{boundary}--\r\nepilogue",
    ]
    raw = b"".join(p.encode() if isinstance(p, str) else p for p in parts)

    def pieces() -> Iterator[bytes]:  # odd-sized pieces, sent chunked
        for i in range(0, len(raw), 7777):
            yield raw[i : i + 7777]

    r = httpx.post(gateway.transcriptions_url, content=pieces(), timeout=30, headers={
        **AUTH, "Content-Type": f"multipart/form-data; boundary={boundary}"})  # fmt: skip
    assert r.status_code == 200, r.text
    rec = gateway.requests[0]
    assert "chunked" in rec.headers["transfer-encoding"]
    assert rec.filename == 'a "quoted" name.wav'
    assert rec.fields == {"model": ["whisper-1"], "extra": ["v"]}
    assert rec.file_bytes == len(audio)
    r = httpx.post(gateway.transcriptions_url, content=raw[:-30], timeout=30, headers={
        **AUTH, "Content-Type": f"multipart/form-data; boundary={boundary}"})  # fmt: skip
    assert r.status_code == 400 and "Malformed" in r.json()["error"]["message"]


def test_paths(gateway: FakeGateway) -> None:
    r = httpx.post(f"{gateway.base_url}/audio/speech", headers=AUTH, json={})
    assert r.status_code == 404 and "Invalid URL" in r.json()["error"]["message"]
    models = httpx.get(f"{gateway.base_url}/models").json()
    assert "whisper-1" in [m["id"] for m in models["data"]]


def test_a_bug_in_the_gateway_is_not_a_plain_500(
    gateway: FakeGateway, short: tuple[Path, list[Burst]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import gateway as module

    def broken(*args: object, **kwargs: object) -> list[Word]:
        raise RuntimeError("boom")

    monkeypatch.setattr(module, "recognise", broken)
    r = post(gateway, short[0])
    assert r.status_code == 500 and r.json()["error"]["code"] == "fake_gateway_bug"
    assert gateway.requests[0].fault == "gateway-bug"
    assert "boom" in gateway.errors[0]
    gateway.errors.clear()


# --------------------------------------------------------------------------- gateways


def test_requesty_mode(gateway_factory: Any, short: tuple[Path, list[Burst]]) -> None:
    gw = gateway_factory(mode="requesty")
    assert gw.upload_cap == 32 * 1024 * 1024
    r = post(gw, short[0], model="whisper-1")
    assert r.status_code == 404 and r.json()["error"]["origin"] == "router"
    for fmt in ("text", "srt", "vtt"):
        r = post(gw, short[0], model="openai/whisper-1", fmt=fmt)
        assert r.status_code == 400
        error = r.json()["error"]
        assert error["origin"] == "router" and error["param"] == "response_format"
    r = post(gw, short[0], model="openai/whisper-1", fmt="verbose_json", granularities=["word"])
    assert r.status_code == 200 and len(r.json()["words"]) == len(short[1])
    r = post(gw, short[0], model="openai/gpt-4o-transcribe", fmt="verbose_json")
    assert r.status_code == 400 and r.json()["error"]["origin"] == "provider"
    r = post(gw, short[0], model="openai/whisper-1", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["error"]["origin"] == "router"


PORTKEY = "pk-test-PORTKEY-key"


def portkey_headers(**extra: str) -> dict[str, str]:
    return {"x-portkey-api-key": PORTKEY, **{k.replace("_", "-"): v for k, v in extra.items()}}


def test_portkey_routing_errors(gateway_factory: Any, short: tuple[Path, list[Burst]]) -> None:
    gw = gateway_factory(mode="portkey", portkey_api_key=PORTKEY)
    r = post(gw, short[0], headers={"x-portkey-provider": "openai", **AUTH})
    assert r.status_code == 401 and r.json()["status"] == "failure"
    r = post(gw, short[0], headers=portkey_headers())
    assert r.status_code == 400
    assert set(r.json()) == {"status", "message"} and r.json()["status"] == "failure"
    r = post(gw, short[0], headers=portkey_headers(x_portkey_provider="openai"))
    assert r.status_code == 401  # forwarded as "Bearer undefined"
    assert r.json()["error"]["message"].startswith("openai error: Incorrect API key provided")
    assert r.json()["provider"] == "openai"
    r = post(gw, short[0], headers=portkey_headers(x_portkey_config="{not json"))
    assert r.status_code == 400 and r.json()["status"] == "failure"


def test_portkey_wraps_and_reserialises(
    gateway_factory: Any, short: tuple[Path, list[Burst]]
) -> None:
    path, bursts = short
    gw = gateway_factory(mode="portkey", portkey_api_key=PORTKEY)
    headers = portkey_headers(x_portkey_provider="openai", **AUTH)
    text = " ".join(b.word for b in bursts)
    r = post(gw, path, fmt="text", headers=headers)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {"html-message": text + "\n"}
    r = post(gw, path, fmt="srt", headers=headers)
    cues = list(srt.parse(r.json()["html-message"]))
    assert " ".join(c.content for c in cues) == text
    r = post(gw, path, fmt="verbose_json", headers=headers)
    assert '"temperature": 0,' in r.text and '"duration": 6,' in r.text
    assert r.json()["text"] == text
    r = post(gw, path, model="gpt-4o-transcribe", fmt="verbose_json", headers=headers)
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith("openai error: ")
    assert r.json()["error"]["param"] == "response_format" and r.json()["provider"] == "openai"
    for route in ({"x_portkey_virtual_key": "vk-1"}, {"x_portkey_config": "pc-abc"},
                  {"x_portkey_config": '{"provider": "openai", "api_key": "x"}'}):  # fmt: skip
        assert post(gw, path, headers=portkey_headers(**route)).json() == {"text": text}
    gw.inject(429, headers={"retry-after": "1"})
    r = post(gw, path, headers=headers)
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert r.json()["error"]["message"].startswith("openai error: ")


# --------------------------------------------------------------------------- lifecycle


def test_close_is_prompt_with_busy_and_idle_connections(short: tuple[Path, list[Burst]]) -> None:
    gw = FakeGateway(api_key=API_KEY, latency=30).start()
    client = httpx.Client()
    errors: list[BaseException] = []

    def slow() -> None:
        try:
            post(gw, short[0], client=client)
        except BaseException as exc:  # the server going away mid-request
            errors.append(exc)

    gw.latency = 0
    assert post(gw, short[0], client=client).status_code == 200  # leaves an idle keep-alive
    gw.latency = 30
    thread = threading.Thread(target=slow)
    thread.start()
    deadline = time.monotonic() + 5
    while gw.in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    gw.close()
    assert time.monotonic() - started < 3
    thread.join(timeout=10)
    client.close()
    assert not thread.is_alive()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{gw.base_url}/models", timeout=2)


def test_standalone_script(tmp_path: Path) -> None:
    script = Path(__file__).with_name("gateway.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), "--port", "0", "--serve-seconds", "20"],
        stdout=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", url)
        assert httpx.get(f"{url}/models", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
