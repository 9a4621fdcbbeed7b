"""Probing, validation and conversion of input files (ffprobe/ffmpeg subprocesses).

Everything here judges a file by its content, never by its name: a text file named
`.mp3` is refused, an mp3 named `.wav` is uploaded as `.mp3`. Every problem becomes an
`InputError` naming the file, with one short cause and a hint, before any upload.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sttcli.errors import ConfigError, InputError

FFMPEG_HINT = "install ffmpeg: apt-get install ffmpeg, or brew install ffmpeg"
PROBE_TIMEOUT = 120.0
TAIL_SECONDS = 2.0
TAIL_RATE = 8000  # the tail check decodes to 8 kHz mono s16: cheap, and enough to count

# What the endpoint accepts, by extension, and the content type sent with it.
CONTENT_TYPES: dict[str, str] = {
    "flac": "audio/flac",
    "mp3": "audio/mpeg",
    "mp4": "audio/mp4",
    "mpeg": "audio/mpeg",
    "mpga": "audio/mpeg",
    "m4a": "audio/mp4",
    "ogg": "audio/ogg",
    "wav": "audio/wav",
    "webm": "audio/webm",
}
# Codecs that can be copied into an accepted container without re-encoding.
REMUX_EXT: dict[str, str] = {
    "aac": "m4a",
    "alac": "m4a",
    "opus": "ogg",
    "vorbis": "ogg",
    "mp3": "mp3",
    "flac": "flac",
}
MP4_FAMILY = "mov,mp4,m4a,3gp,3g2,mj2"
MP4_AUDIO_CODECS = frozenset({"aac", "alac", "mp3"})
WEBM_AUDIO_CODECS = frozenset({"opus", "vorbis"})
WEBM_VIDEO_CODECS = frozenset({"vp8", "vp9", "av1"})


@dataclass(frozen=True)
class MediaInfo:
    """What ffprobe found in one input file (its first audio stream)."""

    path: Path
    size: int  # bytes
    container: str  # ffprobe's format_name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    codec: str  # codec of the first audio stream, e.g. "aac"
    duration: float  # seconds
    sample_rate: int
    channels: int
    bit_rate: int | None  # of the audio stream (bits/s) when known
    has_video: bool
    upload_ext: str | None  # extension the endpoint accepts for these exact bytes, or None

    @property
    def kind(self) -> str:
        """A human name for the container ("m4a", "mov", "matroska", "aiff"...)."""
        return _container_kind(self)


@dataclass(frozen=True)
class UploadFile:
    path: Path
    filename: str  # original stem + the extension of the real content
    content_type: str
    converted: bool
    notice: str | None  # one line for the user when the bytes or the name were changed


def ensure_ffmpeg() -> None:
    """ConfigError with an install hint when ffmpeg or ffprobe is not on PATH."""
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            raise ConfigError(f"{tool} not found on PATH", hint=FFMPEG_HINT)


# --------------------------------------------------------------------------- probing


def probe(path: Path) -> MediaInfo:
    """Probe and validate `path`; InputError (naming the file) for anything unusable."""
    path = Path(path)
    size = _check_file(path)
    ensure_ffmpeg()
    data = _ffprobe_json(path)
    fmt: dict[str, Any] = data.get("format") or {}
    streams: list[dict[str, Any]] = data.get("streams") or []
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    has_video = any(_is_real_video(s) for s in streams)
    if audio is None:
        if has_video:
            raise InputError(
                "video has no audio track", file=path, hint="pass a file with a soundtrack"
            )
        raise InputError(
            "no audio stream found (not an audio file?)",
            file=path,
            hint="pass an audio or video recording",
        )
    duration = _duration(fmt, audio)
    if duration is None:
        duration = _decoded_seconds(path, None)
    elif duration > 0 and not _tail_decodes(path, duration):
        if b"estimating duration from bitrate" not in data["_warnings"]:
            raise InputError(
                f"truncated or corrupt: ends before its stated {duration:.1f} s",
                file=path,
                hint="the recording or download was cut off; get a complete copy",
            )
        duration = _decoded_seconds(path, None)  # the stated duration was only a guess
    if duration <= 0:
        raise InputError("contains no audio (duration 0 s)", file=path, hint="check the recording")
    container = str(fmt.get("format_name") or "unknown")
    codec = str(audio.get("codec_name") or "unknown")
    info = MediaInfo(
        path=path,
        size=size,
        container=container,
        codec=codec,
        duration=duration,
        sample_rate=_int(audio.get("sample_rate")) or 0,
        channels=_int(audio.get("channels")) or 0,
        bit_rate=_int(audio.get("bit_rate")),
        has_video=has_video,
        upload_ext=None,
    )
    return _with_upload_ext(info, fmt, streams)


def _check_file(path: Path) -> int:
    if not path.exists():
        raise InputError("no such file", file=path, hint="check the path")
    if path.is_dir():
        raise InputError(
            "is a directory", file=path, hint="pass a file, or use -r to transcribe a folder"
        )
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except PermissionError:
        raise InputError(
            "permission denied", file=path, hint="check the file's read permission"
        ) from None
    except OSError as exc:
        raise InputError(
            f"cannot read file ({exc.strerror or exc})", file=path, hint="check the file"
        ) from None
    size = path.stat().st_size
    if size == 0:
        raise InputError("file is empty (0 bytes)", file=path, hint="check the recording")
    return size


def _ffprobe_json(path: Path) -> dict[str, Any]:
    """ffprobe's JSON, plus its warnings (lowercased bytes) under "_warnings"."""
    cmd = ["ffprobe", "-v", "warning", "-of", "json", "-show_format", "-show_streams", str(path)]
    proc = _run(cmd, path)
    if proc.returncode != 0:
        raise _undecodable(path, proc.stderr)
    try:
        data = json.loads(proc.stdout or b"{}")
    except json.JSONDecodeError:
        raise InputError("ffprobe gave unreadable output", file=path) from None
    if not isinstance(data, dict) or not data.get("format"):
        raise _undecodable(path, proc.stderr)
    data["_warnings"] = proc.stderr.lower()
    return data


def _run(cmd: list[str], path: Path) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            cmd, capture_output=True, timeout=PROBE_TIMEOUT, check=False, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise InputError(
            f"{cmd[0]} took over {PROBE_TIMEOUT:.0f} s", file=path, hint="is the file readable?"
        ) from None
    except FileNotFoundError:
        raise ConfigError(f"{cmd[0]} not found on PATH", hint=FFMPEG_HINT) from None


def _undecodable(path: Path, stderr: bytes) -> InputError:
    detail = one_line(stderr, path)
    low = detail.lower()
    if b"moov atom not found" in stderr.lower():
        return InputError(
            "incomplete file: its index (moov atom) is missing",
            file=path,
            hint="the recording or download was cut off; get a complete copy",
        )
    cause = "not a recognised audio or video file"
    if detail and "invalid data" not in low and "invalid argument" not in low:
        cause = f"{cause} ({detail})"
    return InputError(cause, file=path, hint="pass an audio or video recording")


def one_line(stderr: bytes | str, path: Path | None = None) -> str:
    """The most meaningful line of ffmpeg's stderr: the last one, without the path prefix."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1]
    if path is not None and line.startswith(f"{path}: "):
        line = line[len(str(path)) + 2 :]
    if line.startswith("[") and "] " in line:
        line = line.split("] ", 1)[1]
    return line[:200]


def _is_real_video(stream: dict[str, Any]) -> bool:
    """A video stream that is not just cover art."""
    if stream.get("codec_type") != "video":
        return False
    disposition = stream.get("disposition") or {}
    return not disposition.get("attached_pic")


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _float(value: object) -> float | None:
    try:
        number = float(str(value))
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # drop NaN


def _duration(fmt: dict[str, Any], audio: dict[str, Any]) -> float | None:
    for value in (audio.get("duration"), fmt.get("duration")):
        number = _float(value)
        if number is not None:
            return number
    return None


def _tail_decodes(path: Path, duration: float) -> bool:
    """Whether the last couple of seconds decode: a file cut mid-way decodes nothing
    there (seeking near the end is cheap; decoding everything is not)."""
    span = min(TAIL_SECONDS, duration)
    got = _decoded_seconds(path, max(0.0, duration - span))
    return got >= min(0.5, span / 4)


def _decoded_seconds(path: Path, start: float | None) -> float:
    """Seconds of audio ffmpeg decodes from `start` (None: the whole file) to the end."""
    seek = ["-ss", f"{start:.3f}"] if start is not None else []
    cmd = [
        "ffmpeg", "-nostdin", "-v", "error", *seek, "-i", str(path),
        "-map", "0:a:0", "-ac", "1", "-ar", str(TAIL_RATE), "-f", "s16le", "pipe:1",
    ]  # fmt: skip
    total = 0
    # stderr goes to a file: a corrupt file can make ffmpeg print megabytes of errors,
    # which would fill a pipe and block it while we wait on stdout.
    with (
        tempfile.TemporaryFile() as errors,
        subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL
        ) as proc,
    ):
        assert proc.stdout is not None
        while block := proc.stdout.read(1 << 16):
            total += len(block)
        proc.wait()
        errors.seek(0)
        err = errors.read()[-4096:]
    if proc.returncode != 0 and total == 0:
        raise InputError(
            f"cannot decode audio ({one_line(err, path) or 'ffmpeg failed'})",
            file=path,
            hint="the file may be corrupt",
        )
    return total / (2 * TAIL_RATE)


# ------------------------------------------------------------------ upload extension


def _with_upload_ext(
    info: MediaInfo, fmt: dict[str, Any], streams: list[dict[str, Any]]
) -> MediaInfo:
    return replace(info, upload_ext=_upload_ext(info, fmt, streams))


def _upload_ext(info: MediaInfo, fmt: dict[str, Any], streams: list[dict[str, Any]]) -> str | None:
    names = set(info.container.split(","))
    codec = info.codec
    if info.container == MP4_FAMILY:
        return _mp4_ext(info, fmt)
    if "matroska" in names:
        return "webm" if _is_true_webm(info.path, streams) else None
    if "wav" in names:
        return "wav" if codec.startswith("pcm_") else None
    if "mp3" in names:
        return "mp3" if codec == "mp3" else None
    if "flac" in names:
        return "flac" if codec == "flac" else None
    if "ogg" in names:
        return "ogg" if codec in WEBM_AUDIO_CODECS else None
    return None


def _major_brand(fmt: dict[str, Any]) -> str:
    tags = fmt.get("tags") or {}
    return str(tags.get("major_brand", "")).strip().lower()


def _mp4_ext(info: MediaInfo, fmt: dict[str, Any]) -> str | None:
    brand = _major_brand(fmt)
    if info.codec not in MP4_AUDIO_CODECS or brand in ("qt", "") or brand.startswith("3g"):
        return None
    if brand == "m4a" or not info.has_video:
        return "m4a"
    return "mp4"


def _is_true_webm(path: Path, streams: list[dict[str, Any]]) -> bool:
    """WebM = Matroska with DocType "webm" holding only opus/vorbis (and vp8/vp9/av1)."""
    for stream in streams:
        kind, codec = stream.get("codec_type"), stream.get("codec_name")
        if kind == "audio" and codec not in WEBM_AUDIO_CODECS:
            return False
        if kind == "video" and codec not in WEBM_VIDEO_CODECS and _is_real_video(stream):
            return False
    return ebml_doctype(path) == "webm"


def ebml_doctype(path: Path) -> str | None:
    """The DocType string of a Matroska/WebM file's EBML header ("webm", "matroska")."""
    try:
        with path.open("rb") as handle:
            head = handle.read(256)
    except OSError:
        return None
    if not head.startswith(b"\x1a\x45\xdf\xa3"):
        return None
    at = head.find(b"\x42\x82", 4)
    if at < 0 or at + 3 > len(head):
        return None
    first = head[at + 2]
    width = 1
    while width <= 8 and not first & (0x80 >> (width - 1)):
        width += 1
    if width > 8:
        return None
    size = first & (0xFF >> width)
    for byte in head[at + 3 : at + 2 + width]:
        size = (size << 8) | byte
    begin = at + 2 + width
    return head[begin : begin + size].rstrip(b"\0").decode("ascii", "replace").lower()


def _container_kind(info: MediaInfo) -> str:
    if info.container == MP4_FAMILY:
        try:
            with info.path.open("rb") as handle:
                brand = handle.read(12)[8:12].decode("ascii", "replace").strip().lower()
        except OSError:
            brand = ""
        return {"qt": "mov", "m4a": "m4a"}.get(brand, "3gp" if brand.startswith("3g") else "mp4")
    if info.container == "matroska,webm":
        return ebml_doctype(info.path) or "matroska"
    return info.container.split(",")[0]


# ----------------------------------------------------------------------- conversion


def prepare_upload(info: MediaInfo, workdir: Path, *, convert: bool = True) -> UploadFile:
    """The file to upload in one request: the original bytes when the endpoint accepts
    them (named after what they really are), else a remux or a lossless FLAC transcode."""
    name = info.path.name
    stem = info.path.stem or "audio"
    if info.upload_ext is not None:
        ext = info.upload_ext
        notice = None
        if info.path.suffix.lower().lstrip(".") != ext:
            notice = f"{name}: content is {ext}, uploading as {stem}.{ext}"
        return UploadFile(info.path, f"{stem}.{ext}", CONTENT_TYPES[ext], False, notice)
    kind = info.kind
    if not convert:
        raise InputError(
            f"{kind} ({info.codec}) cannot be uploaded as is",
            file=info.path,
            hint="remove --no-convert to let sttcli convert it",
        )
    workdir.mkdir(parents=True, exist_ok=True)
    remux = REMUX_EXT.get(info.codec)
    if remux is not None:
        out = workdir / f"{stem}.{remux}"
        if _ffmpeg_convert(info.path, out, ["-c:a", "copy"]):
            notice = (
                f"{name}: remuxed {info.codec} from {kind} to {remux} for upload (no re-encoding)"
            )
            return UploadFile(out, out.name, CONTENT_TYPES[remux], True, notice)
    out = workdir / f"{stem}.flac"
    _ffmpeg_convert(info.path, out, ["-c:a", "flac"], raise_on_error=True)
    notice = f"{name}: converted {kind} ({info.codec}) to flac for upload"
    return UploadFile(out, out.name, CONTENT_TYPES["flac"], True, notice)


def _ffmpeg_convert(
    src: Path, out: Path, codec_args: list[str], *, raise_on_error: bool = False
) -> bool:
    cmd = [
        "ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src),
        "-map", "0:a:0", "-vn", "-sn", "-dn", *codec_args, str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, check=False, stdin=subprocess.DEVNULL)
    if proc.returncode == 0 and out.exists() and out.stat().st_size > 0:
        return True
    out.unlink(missing_ok=True)
    if raise_on_error:
        raise InputError(
            f"conversion failed ({one_line(proc.stderr, src) or 'ffmpeg failed'})",
            file=src,
            hint="the file may be corrupt",
        )
    return False


def estimated_upload_bytes(info: MediaInfo) -> int:
    """Bytes prepare_upload will send: the file itself, the copied audio stream for a
    remux, or an upper bound (16-bit PCM size) for a FLAC transcode."""
    if info.upload_ext is not None:
        return info.size
    if info.codec in REMUX_EXT:
        if info.bit_rate:
            return min(info.size, int(info.bit_rate * info.duration / 8) + 65536)
        return info.size
    channels = max(1, info.channels)
    return int(info.sample_rate * channels * 2 * info.duration) + 65536


__all__ = [
    "CONTENT_TYPES",
    "MediaInfo",
    "UploadFile",
    "ensure_ffmpeg",
    "estimated_upload_bytes",
    "one_line",
    "prepare_upload",
    "probe",
]
