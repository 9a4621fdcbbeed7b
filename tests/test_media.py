"""Probing, validation and conversion of inputs, on real files made with ffmpeg."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # until conftest puts tests/ on the path

from audiogen import write_recording
from sttcli.errors import ConfigError, ExitCode, InputError
from sttcli.media import (
    MediaInfo,
    ebml_doctype,
    ensure_ffmpeg,
    one_line,
    prepare_upload,
    probe,
)


def ffmpeg(*args: str) -> None:
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", *args]
    subprocess.run(cmd, check=True, capture_output=True)


def tone(path: Path, *codec: str, seconds: float = 4.0, video: bool = False) -> Path:
    """A short tone (optionally with a test-pattern video) encoded as `codec` says."""
    inputs = ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    if video:
        inputs += ["-f", "lavfi", "-i", f"testsrc=duration={seconds}:size=160x120:rate=10"]
    ffmpeg(*inputs, *codec, "-shortest", str(path))
    return path


def packets(path: Path) -> list[str]:
    """MD5s of the audio packets' payloads (ADTS headers stripped): identical lists mean
    the stream was copied, not re-encoded."""
    bsf = ["-bsf:a", "aac_adtstoasc"] if path.suffix == ".aac" else []
    cmd = ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a:0", "-c", "copy", *bsf]
    out = subprocess.run([*cmd, "-f", "framemd5", "-"], capture_output=True, check=True)
    lines = out.stdout.decode().splitlines()
    return [line.split(",")[5].strip() for line in lines if not line.startswith("#")]


def assert_input_error(path: Path, fragment: str) -> InputError:
    with pytest.raises(InputError) as caught:
        probe(path)
    error = caught.value
    assert error.exit_code == ExitCode.INPUT
    assert error.file == str(path)
    assert fragment in error.cause
    assert error.hint
    line = error.one_line()
    assert "\n" not in line and len(line) < 300
    return error


# -------------------------------------------------------------------------- good files

GOOD = [
    ("talk.wav", (), "wav", "pcm_s16le", "wav"),
    ("talk.mp3", ("-c:a", "libmp3lame", "-b:a", "64k"), "mp3", "mp3", "mp3"),
    ("talk.m4a", ("-c:a", "aac", "-b:a", "64k"), "mov,mp4,m4a,3gp,3g2,mj2", "aac", "m4a"),
    ("talk.ogg", ("-c:a", "libvorbis"), "ogg", "vorbis", "ogg"),
    ("talk.opus", ("-c:a", "libopus"), "ogg", "opus", "ogg"),
    ("talk.flac", (), "flac", "flac", "flac"),
    ("talk.webm", ("-c:a", "libopus"), "matroska,webm", "opus", "webm"),
]


@pytest.mark.parametrize(("name", "codec_args", "container", "codec", "ext"), GOOD)
def test_probe_accepted_formats(
    tmp_path: Path, name: str, codec_args: tuple[str, ...], container: str, codec: str, ext: str
) -> None:
    path = tone(tmp_path / name, *codec_args)
    info = probe(path)
    assert isinstance(info, MediaInfo)
    assert info.path == path and info.size == path.stat().st_size
    assert (info.container, info.codec, info.upload_ext) == (container, codec, ext)
    assert info.duration == pytest.approx(4.0, abs=0.1)
    assert info.sample_rate > 0 and info.channels == 1
    assert not info.has_video
    upload = prepare_upload(info, tmp_path / "work")
    assert upload.path == path and not upload.converted  # the original bytes
    assert upload.filename == f"talk.{ext}"
    assert upload.content_type.startswith("audio/")
    assert (upload.notice is None) == (path.suffix == f".{ext}")


def test_probe_generated_speech_at_any_rate(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "s.wav", [], 3.0, rate=44100, channels=2)
    info = probe(path)
    assert (info.sample_rate, info.channels, info.upload_ext) == (44100, 2, "wav")
    assert info.bit_rate == 44100 * 2 * 16


def test_mp4_video_with_audio_uploads_as_mp4(tmp_path: Path) -> None:
    path = tone(tmp_path / "clip.mp4", "-c:a", "aac", "-c:v", "libx264", video=True)
    info = probe(path)
    assert info.has_video and info.codec == "aac" and info.upload_ext == "mp4"


def test_lying_extension_uploads_under_the_true_one(tmp_path: Path) -> None:
    path = tone(tmp_path / "song.wav", "-c:a", "libmp3lame", "-f", "mp3")
    info = probe(path)
    assert info.upload_ext == "mp3"
    upload = prepare_upload(info, tmp_path / "work")
    assert upload.path == path and not upload.converted
    assert upload.filename == "song.mp3" and upload.content_type == "audio/mpeg"
    assert upload.notice == "song.wav: content is mp3, uploading as song.mp3"


# ----------------------------------------------------------------------- conversions


def test_aiff_is_converted_losslessly_to_flac(tmp_path: Path) -> None:
    path = tone(tmp_path / "talk.aiff")
    info = probe(path)
    assert info.upload_ext is None and info.codec == "pcm_s16be"
    upload = prepare_upload(info, tmp_path / "work")
    assert upload.converted and upload.filename == "talk.flac"
    assert upload.path.parent == tmp_path / "work"
    assert upload.notice == "talk.aiff: converted aiff (pcm_s16be) to flac for upload"
    converted = probe(upload.path)
    assert converted.codec == "flac" and converted.duration == pytest.approx(4.0, abs=0.01)
    same = ["ffmpeg", "-v", "error", "-i"]
    pcm = [subprocess.run([*same, str(p), "-f", "s16le", "-"], capture_output=True).stdout
           for p in (path, upload.path)]  # fmt: skip
    assert pcm[0] == pcm[1]  # lossless


@pytest.mark.parametrize(
    ("name", "codec_args", "ext", "kind"),
    [
        ("talk.mkv", ("-c:a", "aac"), "m4a", "matroska"),
        ("talk.mov", ("-c:a", "aac"), "m4a", "mov"),
        ("talk.aac", ("-c:a", "aac", "-f", "adts"), "m4a", "aac"),
        ("voice.mkv", ("-c:a", "libopus"), "ogg", "matroska"),
    ],
)
def test_remux_without_reencoding(
    tmp_path: Path, name: str, codec_args: tuple[str, ...], ext: str, kind: str
) -> None:
    path = tone(tmp_path / name, *codec_args)
    info = probe(path)
    assert info.upload_ext is None and info.kind == kind
    upload = prepare_upload(info, tmp_path / "work")
    assert upload.converted and upload.filename == f"{path.stem}.{ext}"
    assert "no re-encoding" in (upload.notice or "") and f"to {ext}" in (upload.notice or "")
    assert probe(upload.path).upload_ext == ext
    assert packets(upload.path) == packets(path)


def test_mkv_with_video_keeps_only_audio(tmp_path: Path) -> None:
    path = tone(tmp_path / "talk.mkv", "-c:a", "aac", "-c:v", "libx264", video=True)
    info = probe(path)
    assert info.has_video and info.upload_ext is None
    upload = prepare_upload(info, tmp_path / "work")
    assert upload.filename == "talk.m4a" and not probe(upload.path).has_video


def test_opus_in_webm_named_mkv_is_webm_only_by_doctype(tmp_path: Path) -> None:
    webm = tone(tmp_path / "a.webm", "-c:a", "libopus")
    mkv = tone(tmp_path / "a.mkv", "-c:a", "libopus")
    assert ebml_doctype(webm) == "webm" and ebml_doctype(mkv) == "matroska"
    renamed = webm.rename(tmp_path / "renamed.mkv")
    assert probe(renamed).upload_ext == "webm"
    assert probe(mkv).upload_ext is None


def test_no_convert_refuses_what_needs_conversion(tmp_path: Path) -> None:
    info = probe(tone(tmp_path / "talk.aiff"))
    with pytest.raises(InputError) as caught:
        prepare_upload(info, tmp_path / "work", convert=False)
    assert caught.value.file == str(info.path)
    assert "aiff" in caught.value.cause and "--no-convert" in (caught.value.hint or "")
    good = probe(tone(tmp_path / "talk.flac"))
    assert prepare_upload(good, tmp_path / "work", convert=False).path == good.path


# ------------------------------------------------------------------------- bad inputs


def test_missing_file(tmp_path: Path) -> None:
    assert_input_error(tmp_path / "nope.mp3", "no such file")


def test_directory(tmp_path: Path) -> None:
    assert_input_error(tmp_path, "directory")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.touch()
    assert_input_error(path, "empty")


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tone(tmp_path / "locked.wav")
    path.chmod(0)
    try:
        assert_input_error(path, "permission denied")
    finally:
        path.chmod(0o644)


def test_text_named_mp3(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp3"
    path.write_text("Meeting notes: nothing to hear here.\n" * 50)
    assert_input_error(path, "not a recognised audio or video file")


def test_m4a_cut_before_its_index(tmp_path: Path) -> None:
    full = tone(tmp_path / "full.m4a", "-c:a", "aac", "-movflags", "-faststart", seconds=8)
    cut = tmp_path / "cut.m4a"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    error = assert_input_error(cut, "incomplete file")
    assert "cut off" in (error.hint or "")


@pytest.mark.parametrize("name", ["cut.flac", "cut.m4a"])
def test_file_cut_mid_way(tmp_path: Path, name: str) -> None:
    extra = ("-c:a", "aac", "-movflags", "+faststart") if name.endswith("m4a") else ()
    full = tone(tmp_path / f"full{Path(name).suffix}", *extra, seconds=20)
    cut = tmp_path / name
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    assert_input_error(cut, "truncated or corrupt")


def test_video_without_audio(tmp_path: Path) -> None:
    path = tmp_path / "silent.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=duration=2:size=160x120:rate=10", str(path))
    assert_input_error(path, "video has no audio track")


def test_zero_duration_audio(tmp_path: Path) -> None:
    path = tmp_path / "nothing.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-t", "0", str(path))
    assert path.stat().st_size > 0
    assert_input_error(path, "no audio")


def test_missing_ffmpeg_is_config_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ConfigError) as caught:
        ensure_ffmpeg()
    assert "apt-get install ffmpeg" in (caught.value.hint or "")
    assert "brew install ffmpeg" in (caught.value.hint or "")
    path = tone(tmp_path / "a.wav")
    with pytest.raises(ConfigError):
        probe(path)


def test_one_line_keeps_the_meaningful_line() -> None:
    stderr = (
        b"[mov,mp4,m4a,3gp,3g2,mj2 @ 0x5] moov atom not found\n"
        b"/x/cut.m4a: Invalid data found when processing input\n"
    )
    assert one_line(stderr, Path("/x/cut.m4a")) == "Invalid data found when processing input"
    assert one_line(b"[flac @ 0x1] invalid residual\n") == "invalid residual"
    assert one_line(b"") == ""


def test_guessed_mp3_duration_is_measured_not_called_truncated(tmp_path: Path) -> None:
    # A VBR mp3 without a Xing header: ffprobe guesses its duration from the first
    # frames' bit rate (here far too long). That is not a truncated file.
    path = tmp_path / "vbr.mp3"
    ffmpeg(
        "-f", "lavfi", "-i", "sine=frequency=440:duration=20",
        "-f", "lavfi", "-i", "anoisesrc=duration=20:amplitude=0.5",
        "-filter_complex", "[0][1]concat=n=2:v=0:a=1",
        "-c:a", "libmp3lame", "-q:a", "2", "-write_xing", "0", str(path),
    )  # fmt: skip
    info = probe(path)
    assert info.duration == pytest.approx(40.0, abs=0.1)
    assert info.upload_ext == "mp3"


def test_a_long_corrupt_file_with_megabytes_of_decoder_errors_does_not_hang(
    tmp_path: Path,
) -> None:
    """ffmpeg prints an error per damaged frame; reading its stdout to the end while its
    stderr pipe fills would block both sides forever."""
    clean = tmp_path / "noxing.mp3"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         "sine=frequency=440:duration=600", "-c:a", "libmp3lame", "-b:a", "64k",
         "-write_xing", "0", str(clean)],
        check=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    data = bytearray(clean.read_bytes())
    for at in range(len(data) // 10, len(data) - len(data) // 10, 417):
        data[at : at + 2] = bytes(((at * 7) % 256, (at * 13) % 256))
    corrupt = tmp_path / "corrupt.mp3"
    corrupt.write_bytes(bytes(data))
    script = "import sys, pathlib; from sttcli import media; "
    script += "print(media.probe(pathlib.Path(sys.argv[1])).duration)"
    result = subprocess.run(
        [sys.executable, "-c", script, str(corrupt)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) > 500
