"""The installed CLI against the test gateway: formats, gateways, bad inputs, endpoint
errors, secrets. Every run is a real subprocess talking real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from audiogen import Burst
from checks import (
    assert_cues_match,
    assert_words_match,
    parse_srt,
    parse_verbose,
    parse_vtt,
    phrases,
)
from conftest import API_KEY, CLI
from gateway import FakeGateway, ModelSpec

Run = Callable[..., subprocess.CompletedProcess[str]]
TOLERANCE = 0.05  # seconds: every cue and word must be this close to where its speech is


def ffmpeg(*args: str) -> None:
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args],
        check=True,
        stdin=subprocess.DEVNULL,
    )


def key_env(**extra: str) -> dict[str, str | None]:
    return {"STTCLI_API_KEY": API_KEY, "STTCLI_BACKOFF_BASE": "0.01", **extra}


RETRY_LINE = re.compile(r"; retry \d+/\d+ in ")


def assert_one_line_error(
    result: subprocess.CompletedProcess[str], code: int, *, debug: bool = False
) -> str:
    assert result.returncode == code, result.stderr
    assert ("Traceback" in result.stderr) is debug, "tracebacks belong to --debug only"
    errors = [line for line in result.stderr.splitlines() if line.startswith("sttcli: error:")]
    assert len(errors) == 1, result.stderr
    assert result.stdout == ""
    return errors[0]


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize("fmt", ["srt", "vtt", "verbose_json"])
def test_timed_formats_put_cues_where_the_speech_is(
    fmt: str, gateway: FakeGateway, speech_wav: tuple[Path, list[Burst]], run_cli: Run
) -> None:
    path, bursts = speech_wav
    result = run_cli("transcribe", path, "-f", fmt, "--base-url", gateway.base_url, env=key_env())
    assert result.returncode == 0, result.stderr
    parse = {"srt": parse_srt, "vtt": parse_vtt}.get(fmt)
    cues = parse(result.stdout) if parse else parse_verbose(result.stdout)[0]
    assert_cues_match(cues, phrases(bursts), TOLERANCE)
    (request,) = gateway.requests
    assert request.response_format == "verbose_json"
    assert request.filename == "speech.wav"


def test_word_timestamps(
    gateway: FakeGateway, speech_wav: tuple[Path, list[Burst]], run_cli: Run
) -> None:
    path, bursts = speech_wav
    result = run_cli(
        "transcribe", path, "-f", "verbose_json", "--timestamps", "word,segment",
        "--base-url", gateway.base_url, env=key_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert gateway.requests[0].granularities == ["word", "segment"]
    segments, words = parse_verbose(result.stdout)
    assert_words_match(words, bursts, TOLERANCE)
    assert len(segments) == len(phrases(bursts))


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_text_and_json_pass_through_unsplit(
    fmt: str, gateway: FakeGateway, speech_wav: tuple[Path, list[Burst]], run_cli: Run
) -> None:
    path, bursts = speech_wav
    result = run_cli("transcribe", path, "-f", fmt, "--base-url", gateway.base_url, env=key_env())
    assert result.returncode == 0, result.stderr
    expected = " ".join(b.word for b in bursts)
    text = json.loads(result.stdout)["text"] if fmt == "json" else result.stdout.strip()
    assert text == expected
    assert gateway.requests[0].response_format == fmt


def test_default_format_is_text_and_usage_goes_to_stderr(
    gateway_factory: Callable[..., FakeGateway],
    speech_wav: tuple[Path, list[Burst]],
    run_cli: Run,
) -> None:
    gw = gateway_factory(usage="duration")
    path, bursts = speech_wav
    result = run_cli("transcribe", path, "--base-url", gw.base_url, env=key_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [b.word for b in bursts]
    assert gw.requests[0].response_format == "text"  # passed through: no usage in a text body
    result = run_cli("transcribe", path, "-f", "json", "--base-url", gw.base_url, env=key_env())
    assert result.returncode == 0, result.stderr
    assert "usage: 20.0 s of audio billed" in result.stderr
    assert json.loads(result.stdout)["usage"] == {"type": "duration", "seconds": 20.0}


def test_output_file_and_directory(
    gateway: FakeGateway, speech_wav: tuple[Path, list[Burst]], run_cli: Run, tmp_path: Path
) -> None:
    path, bursts = speech_wav
    target = tmp_path / "out.srt"
    env = key_env()
    result = run_cli("transcribe", path, "-f", "srt", "-o", target, "--base-url",
                     gateway.base_url, env=env)  # fmt: skip
    assert result.returncode == 0 and result.stdout == ""
    cues = parse_srt(target.read_text())
    assert_cues_match(cues, phrases(bursts), TOLERANCE)
    assert f"sttcli: wrote {target}: {len(cues)} cues, 1 request, " in result.stderr
    result = run_cli("transcribe", path, "-f", "vtt", "-o", tmp_path, "--base-url",
                     gateway.base_url, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert parse_vtt((tmp_path / "speech.vtt").read_text())
    assert not list(tmp_path.glob(".*.part")), "temporary files left behind"


def test_stdin_input(gateway: FakeGateway, speech_wav: tuple[Path, list[Burst]]) -> None:
    path, bursts = speech_wav
    env = {**os.environ, "STTCLI_API_KEY": API_KEY}
    result = subprocess.run(
        [str(CLI), "transcribe", "-", "-f", "srt", "--base-url", gateway.base_url],
        input=path.read_bytes(), capture_output=True, env=env, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert_cues_match(parse_srt(result.stdout.decode()), phrases(bursts), TOLERANCE)
    assert gateway.requests[0].filename == "stdin.wav"


def test_translate_uses_the_translations_endpoint(
    gateway: FakeGateway, speech_wav: tuple[Path, list[Burst]], run_cli: Run
) -> None:
    path, bursts = speech_wav
    result = run_cli("translate", path, "-f", "srt", "-l", "fr", "--base-url", gateway.base_url,
                     env=key_env())  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert_cues_match(parse_srt(result.stdout), phrases(bursts), TOLERANCE)
    assert gateway.requests[0].path.endswith("/audio/translations")
    assert "language" not in gateway.requests[0].fields


def test_translate_with_a_model_that_cannot_fails_before_upload(
    gateway: FakeGateway, speech_wav: tuple[Path, list[Burst]], run_cli: Run
) -> None:
    result = run_cli("translate", speech_wav[0], "-m", "gpt-4o-transcribe", "--base-url",
                     gateway.base_url, env=key_env())  # fmt: skip
    assert "cannot translate" in assert_one_line_error(result, 4)
    assert gateway.requests == []


def test_request_fields_are_sent(
    gateway: FakeGateway, speech_wav: tuple[Path, list[Burst]], run_cli: Run
) -> None:
    result = run_cli(
        "transcribe", speech_wav[0], "-l", "EN", "--prompt", "Alpha, Bravo.",
        "--temperature", "0.2", "-m", "whisper-1", "--base-url",
        gateway.base_url + "/audio/transcriptions", env=key_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    fields = gateway.requests[0].fields
    assert fields["language"] == ["en"]
    assert fields["prompt"] == ["Alpha, Bravo."]
    assert fields["temperature"] == ["0.2"]
    assert fields["model"] == ["whisper-1"]


@pytest.mark.parametrize("model", ["whisper-1", "gpt-4o-transcribe"])
def test_a_silent_recording_gives_empty_valid_subtitles(
    model: str, gateway: FakeGateway, run_cli: Run, tmp_path: Path
) -> None:
    silent = tmp_path / "silent.wav"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "10", str(silent))
    for fmt, parse in (("srt", parse_srt), ("vtt", parse_vtt)):
        result = run_cli("transcribe", silent, "-f", fmt, "-m", model, "--base-url",
                         gateway.base_url, env=key_env())  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert parse(result.stdout) == []


# --------------------------------------------------------------------------- gateways


PORTKEY_KEY = "pk-test-SECRET-42"


def portkey(
    make: Callable[..., FakeGateway], **keys: str
) -> tuple[FakeGateway, dict[str, str | None]]:
    """A Portkey-mode gateway and an environment holding its key (and `keys`), no STTCLI key."""
    env = key_env(PORTKEY_API_KEY=PORTKEY_KEY, **keys)
    env["STTCLI_API_KEY"] = None
    return make(mode="portkey", portkey_api_key=PORTKEY_KEY), env


def test_portkey_routing_headers_and_wrapped_answers(
    gateway_factory: Callable[..., FakeGateway],
    speech_wav: tuple[Path, list[Burst]],
    run_cli: Run,
) -> None:
    gw, env = portkey(gateway_factory, OPENAI_API_KEY=API_KEY)
    path, bursts = speech_wav
    common = ["--gateway", "portkey", "--base-url", gw.base_url, "--portkey-provider", "openai"]
    for fmt in ("srt", "vtt", "text"):
        result = run_cli("transcribe", path, "-f", fmt, *common, env=env)
        assert result.returncode == 0, result.stderr
        if fmt == "srt":
            assert_cues_match(parse_srt(result.stdout), phrases(bursts), TOLERANCE)
        elif fmt == "vtt":
            assert_cues_match(parse_vtt(result.stdout), phrases(bursts), TOLERANCE)
        else:  # text comes back wrapped as {"html-message": ...} and is unwrapped
            assert result.stdout.split() == [b.word for b in bursts]
    headers = gw.requests[-1].headers
    assert headers["x-portkey-api-key"] == "pk-test-SECRET-42"
    assert headers["x-portkey-provider"] == "openai"
    assert headers["authorization"] == f"Bearer {API_KEY}"


def test_portkey_error_shapes_are_shown(
    gateway_factory: Callable[..., FakeGateway],
    speech_wav: tuple[Path, list[Burst]],
    run_cli: Run,
) -> None:
    gw, env = portkey(gateway_factory)
    # No routing header: the gateway's own {"status": "failure", "message": ...} body.
    result = run_cli("transcribe", speech_wav[0], "-g", "portkey", "--base-url", gw.base_url,
                     env=env)  # fmt: skip
    line = assert_one_line_error(result, 5)
    assert "HTTP 400" in line and "pk-test-SECRET-42" not in result.stderr
    assert gw.requests and gw.requests[0].status == 400


def test_portkey_provider_header_without_its_key_gets_the_right_hint(
    gateway_factory: Callable[..., FakeGateway],
    speech_wav: tuple[Path, list[Burst]],
    run_cli: Run,
) -> None:
    gw, env = portkey(gateway_factory)
    result = run_cli("transcribe", speech_wav[0], "-g", "portkey", "--base-url", gw.base_url,
                     "-H", "x-portkey-provider: openai", env=env)  # fmt: skip
    line = assert_one_line_error(result, 4)
    assert "HTTP 401" in line and "OPENAI_API_KEY" in line and "--portkey-provider" in line


def test_requesty_profile_renders_subtitles_locally(
    gateway_factory: Callable[..., FakeGateway],
    speech_wav: tuple[Path, list[Burst]],
    run_cli: Run,
) -> None:
    gw = gateway_factory(mode="requesty")
    path, bursts = speech_wav
    env = key_env(REQUESTY_API_KEY=API_KEY)
    env["STTCLI_API_KEY"] = None
    for fmt, parse in (("srt", parse_srt), ("vtt", parse_vtt)):
        result = run_cli("transcribe", path, "-f", fmt, "-g", "requesty", "--base-url",
                         gw.base_url, env=env)  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert_cues_match(parse(result.stdout), phrases(bursts), TOLERANCE)
    result = run_cli("transcribe", path, "-f", "text", "-g", "requesty", "--base-url",
                     gw.base_url, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [b.word for b in bursts]
    assert {r.response_format for r in gw.requests} == {"verbose_json", "json"}
    assert {r.model for r in gw.requests} == {"openai/whisper-1"}


def test_endpoint_refusing_verbose_json_falls_back_to_srt(
    gateway_factory: Callable[..., FakeGateway],
    speech_wav: tuple[Path, list[Burst]],
    run_cli: Run,
) -> None:
    models = {"house-whisper": ModelSpec(frozenset({"json", "text", "srt", "vtt"}))}
    gw = gateway_factory(models=models)
    path, bursts = speech_wav
    result = run_cli("transcribe", path, "-f", "vtt", "-m", "house-whisper", "--base-url",
                     gw.base_url, env=key_env())  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert_cues_match(parse_vtt(result.stdout), phrases(bursts), TOLERANCE)
    assert [r.response_format for r in gw.requests] == ["verbose_json", "srt"]


# --------------------------------------------------------------------------- bad inputs


def make_bad_inputs(root: Path) -> dict[str, Path]:
    bad = {
        "missing": root / "nope.mp3",
        "directory": root / "adir",
        "empty": root / "empty.wav",
        "text": root / "notes.mp3",
        "truncated m4a": root / "cut.m4a",
        "video without audio": root / "silent-film.mp4",
    }
    bad["directory"].mkdir()
    bad["empty"].touch()
    bad["text"].write_text("this is not audio at all\n" * 50)
    whole = root / "whole.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=20", "-c:a", "aac", str(whole))
    data = whole.read_bytes()
    bad["truncated m4a"].write_bytes(data[: len(data) // 2])  # the index (moov) is at the end
    ffmpeg("-f", "lavfi", "-i", "testsrc=duration=2:size=160x120:rate=10",
           str(bad["video without audio"]))  # fmt: skip
    return bad


def test_every_bad_input_gets_one_line_and_exit_3_before_any_upload(
    gateway: FakeGateway, run_cli: Run, tmp_path: Path
) -> None:
    for kind, path in make_bad_inputs(tmp_path).items():
        result = run_cli("transcribe", path, "--base-url", gateway.base_url, env=key_env())
        line = assert_one_line_error(result, 3)
        assert str(path) in line, (kind, line)
        assert "(" in line, f"{kind}: no hint in {line!r}"
    assert gateway.requests == []


def test_unaccepted_container_is_converted_with_a_notice(
    gateway: FakeGateway, speech_wav: tuple[Path, list[Burst]], run_cli: Run, tmp_path: Path
) -> None:
    path, bursts = speech_wav
    aiff = tmp_path / "speech.aiff"
    ffmpeg("-i", str(path), str(aiff))
    result = run_cli("transcribe", aiff, "-f", "srt", "--base-url", gateway.base_url,
                     env=key_env())  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "converted" in result.stderr
    assert_cues_match(parse_srt(result.stdout), phrases(bursts), TOLERANCE)
    assert gateway.requests[0].filename.rsplit(".", 1)[1] in {"flac", "wav"}
    refused = run_cli("transcribe", aiff, "--no-convert", "--base-url", gateway.base_url,
                      env=key_env())  # fmt: skip
    assert "aiff" in assert_one_line_error(refused, 3)
    assert len(gateway.requests) == 1


def test_lying_extension_uploads_under_the_true_one(
    gateway: FakeGateway, speech_wav: tuple[Path, list[Burst]], run_cli: Run, tmp_path: Path
) -> None:
    liar = tmp_path / "really-mp3.wav"
    ffmpeg("-i", str(speech_wav[0]), "-f", "mp3", str(liar))
    result = run_cli("transcribe", liar, "--base-url", gateway.base_url, env=key_env())
    assert result.returncode == 0, result.stderr
    assert gateway.requests[0].filename == "really-mp3.mp3"


# --------------------------------------------------------------------------- endpoint errors


def test_401_names_the_key_to_set_and_never_shows_it(
    gateway: FakeGateway, speech_wav: tuple[Path, list[Burst]], run_cli: Run
) -> None:
    wrong = "sk-wrong-SECRET-key-000000000000"
    result = run_cli("transcribe", speech_wav[0], "-g", "openai", "--base-url", gateway.base_url,
                     "--debug", env={"OPENAI_API_KEY": wrong})  # fmt: skip
    line = assert_one_line_error(result, 4, debug=True)
    assert "HTTP 401" in line and "OPENAI_API_KEY" in line
    assert wrong not in result.stderr and wrong[-4:] + "." not in result.stderr
    assert wrong[:7] not in result.stderr, "the masked key OpenAI echoes must be redacted too"


def test_missing_key_is_a_config_error_naming_the_variable(
    speech_wav: tuple[Path, list[Burst]], run_cli: Run
) -> None:
    result = run_cli("transcribe", speech_wav[0], "-g", "requesty")
    assert "REQUESTY_API_KEY" in assert_one_line_error(result, 4)


def test_404_unknown_model(
    gateway: FakeGateway, speech_wav: tuple[Path, list[Burst]], run_cli: Run
) -> None:
    result = run_cli("transcribe", speech_wav[0], "-m", "whisper-9", "--base-url",
                     gateway.base_url, env=key_env())  # fmt: skip
    line = assert_one_line_error(result, 4)
    assert "HTTP 404" in line and "whisper-9" in line


def test_413_when_the_endpoint_cap_is_lower_than_assumed(
    gateway_factory: Callable[..., FakeGateway],
    speech_wav: tuple[Path, list[Burst]],
    run_cli: Run,
) -> None:
    gw = gateway_factory(upload_cap=100_000)
    result = run_cli("transcribe", speech_wav[0], "--base-url", gw.base_url, env=key_env())
    line = assert_one_line_error(result, 3)
    assert "HTTP 413" in line and "--upload-cap-mb" in line
    assert len(gw.requests) == 1, "413 must not be retried"


def test_500_is_retried_then_exit_5(
    gateway: FakeGateway, speech_wav: tuple[Path, list[Burst]], run_cli: Run
) -> None:
    gateway.inject(500, times=10)
    result = run_cli("transcribe", speech_wav[0], "--retries", "2", "--base-url",
                     gateway.base_url, env=key_env())  # fmt: skip
    assert "HTTP 500" in assert_one_line_error(result, 5)
    assert len(gateway.requests) == 3
    assert len(RETRY_LINE.findall(result.stderr)) == 2


def test_429_with_retry_after_then_success(
    gateway: FakeGateway, speech_wav: tuple[Path, list[Burst]], run_cli: Run
) -> None:
    gateway.inject(429, times=2, headers={"retry-after": "0"})
    gateway.drop_connection(times=1)
    result = run_cli("transcribe", speech_wav[0], "-f", "srt", "--base-url", gateway.base_url,
                     env=key_env())  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(RETRY_LINE.findall(result.stderr)) == 3
    assert len(parse_srt(result.stdout)) == len(phrases(speech_wav[1]))


def test_missing_ffmpeg_says_how_to_install_it(
    speech_wav: tuple[Path, list[Burst]], run_cli: Run, tmp_path: Path
) -> None:
    result = run_cli("transcribe", speech_wav[0], "--base-url", "http://127.0.0.1:9/v1",
                     env={**key_env(), "PATH": str(tmp_path)})  # fmt: skip
    line = assert_one_line_error(result, 4)
    assert "ffmpeg" in line and "apt-get install ffmpeg" in line


def test_unreachable_endpoint_is_exit_5(speech_wav: tuple[Path, list[Burst]], run_cli: Run) -> None:
    result = run_cli("transcribe", speech_wav[0], "--retries", "0", "--base-url",
                     "http://127.0.0.1:9/v1", env=key_env())  # fmt: skip
    assert "cannot reach" in assert_one_line_error(result, 5)


def test_no_output_of_any_run_contains_the_key(
    gateway: FakeGateway, speech_wav: tuple[Path, list[Burst]], run_cli: Run, tmp_path: Path
) -> None:
    env = key_env()
    runs = [
        run_cli("transcribe", speech_wav[0], "-f", "srt", "--debug", "--base-url",
                gateway.base_url, env=env),
        run_cli("transcribe", tmp_path / "missing.wav", "--debug", "--base-url",
                gateway.base_url, env=env),
        run_cli("config", "show", "--base-url", gateway.base_url, env=env),
        run_cli("transcribe", speech_wav[0], "--debug", "-H", f"X-Api-Key: {API_KEY}",
                "--base-url", gateway.base_url, env=env),
    ]  # fmt: skip
    gateway.inject(500, times=5)
    runs.append(run_cli("transcribe", speech_wav[0], "--debug", "--retries", "1",
                        "--base-url", gateway.base_url, env=env))  # fmt: skip
    assert any("debug: " in r.stderr for r in runs), "--debug logged nothing"
    for result in runs:
        assert API_KEY not in result.stdout + result.stderr
        assert API_KEY[-8:] not in result.stdout + result.stderr


# --------------------------------------------------------------------------- usage errors


@pytest.mark.parametrize(
    "args",
    [
        ["-l", "english"],
        ["--temperature", "1.5"],
        ["-f", "docx"],
        ["--timestamps", "sentence"],
        ["--concurrency", "0"],
    ],
)
def test_bad_options_are_usage_errors(
    args: list[str], speech_wav: tuple[Path, list[Burst]], run_cli: Run
) -> None:
    result = run_cli("transcribe", speech_wav[0], *args, "--base-url", "http://127.0.0.1:9/v1")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr


def test_help_reads_well(run_cli: Run) -> None:
    top = run_cli("--help")
    assert top.returncode == 0
    for command in ("transcribe", "translate", "config"):
        assert command in top.stdout
    sub = run_cli("transcribe", "--help")
    assert sub.returncode == 0
    for panel in ("Output", "Model and request", "Gateway", "Long recordings"):
        assert panel in sub.stdout
    assert "--portkey-virtual-key" in sub.stdout and "--dry-run" in sub.stdout
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("sttcli ")


def test_config_path_and_show(run_cli: Run, isolated_env: Path) -> None:
    assert run_cli("config", "path").stdout.strip() == str(isolated_env / "config.toml")
    (isolated_env / "config.toml").write_text('gateway = "groq"\n')
    shown = json.loads(run_cli("config", "show", env={"GROQ_API_KEY": API_KEY}).stdout)
    assert shown["gateway"] == "groq"
    assert shown["api_key"] == "set (from GROQ_API_KEY)"
    assert shown["sources"]["gateway"].endswith("config.toml")
