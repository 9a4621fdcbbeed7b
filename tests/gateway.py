"""A real HTTP gateway for tests that speaks the OpenAI speech-to-text API.

Answers are derived from the audio actually uploaded: the file is decoded with ffmpeg,
tone bursts (see audiogen.py) are found by their energy and named by their frequency, and
the response (json, text, srt, vtt, verbose_json) is built from what was heard. Switches
emulate gateways (OpenAI, Requesty, self-hosted Portkey), model limits, auth, upload caps,
latency and injected faults; every request is recorded for assertions.

    with FakeGateway(api_key="sk-test") as gw:
        httpx.post(f"{gw.base_url}/audio/transcriptions", ...)
        assert gw.requests[0].status == 200

Standalone, for manual tries: `python tests/gateway.py --port 0 --api-key sk-test` prints
the base URL and serves until Ctrl-C (or --serve-seconds).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import numpy as np

try:
    from audiogen import FREQS, WORDS
except ModuleNotFoundError:  # run as a script from elsewhere, or imported by path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from audiogen import FREQS, WORDS

__all__ = [
    "ACCEPTED_EXTENSIONS",
    "ALL_FORMATS",
    "DEFAULT_MODELS",
    "FakeGateway",
    "ModelSpec",
    "RequestRecord",
    "Word",
    "mask_key",
    "recognise",
    "segment_words",
]

SAMPLE_RATE = 16000
FRAME_SECONDS = 0.010
SOUND_DBFS = -40.0
MERGE_GAP_SECONDS = 0.030
SEGMENT_GAP_SECONDS = 0.5
SEGMENT_MAX_SECONDS = 10.0
EDGE_FRACTION = 0.1  # word edges: where |x| first/last reaches 10 % of the word's peak
EDGE_FLOOR = 0.005  # ...but never below this (about 6 sigma above audiogen's noise floor)
MAX_SLEEP_SECONDS = 600.0
TOOL_TIMEOUT_SECONDS = 300.0
MAX_FIELD_BYTES = 1 << 20
MAX_HEADER_BLOCK = 64 << 10
READ_CHUNK = 64 << 10
MB = 1024 * 1024

ALL_FORMATS: tuple[str, ...] = ("json", "text", "srt", "verbose_json", "vtt")
ACCEPTED_EXTENSIONS: tuple[str, ...] = (
    "flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "ogg", "wav", "webm",
)  # fmt: skip
# container names (as ffmpeg/ffprobe report them) that each extension may hold
_CONTAINERS: dict[str, frozenset[str]] = {
    "flac": frozenset({"flac"}),
    "m4a": frozenset({"mov", "mp4", "m4a"}),
    "mp4": frozenset({"mov", "mp4", "m4a"}),
    "mp3": frozenset({"mp3"}),
    "mpga": frozenset({"mp3"}),
    "mpeg": frozenset({"mp3", "mpeg"}),
    "ogg": frozenset({"ogg"}),
    "wav": frozenset({"wav"}),
    "webm": frozenset({"webm", "matroska"}),
}
_FORMATS_LIST = "[" + ", ".join(f"'{e}'" for e in ACCEPTED_EXTENSIONS) + "]"


@dataclass(frozen=True)
class ModelSpec:
    """What a model accepts: response formats, duration cap (seconds), translation, SSE."""

    formats: frozenset[str]
    max_seconds: float | None = None
    translations: bool = True
    streaming: bool = False


_GPT4O = ModelSpec(frozenset({"json", "text"}), 1400.0, translations=False, streaming=True)
_GROQ = frozenset({"json", "text", "verbose_json"})
DEFAULT_MODELS: dict[str, ModelSpec] = {
    "whisper-1": ModelSpec(frozenset(ALL_FORMATS)),
    "gpt-4o-transcribe": _GPT4O,
    "gpt-4o-mini-transcribe": _GPT4O,
    "gpt-transcribe": _GPT4O,
    "whisper-large-v3": ModelSpec(_GROQ),
    "whisper-large-v3-turbo": ModelSpec(_GROQ, translations=False),
}

MODES = ("openai", "requesty", "portkey")
DEFAULT_UPLOAD_CAP = {"openai": 25 * MB, "requesty": 32 * MB, "portkey": 25 * MB}

_DEFAULT_FAULT_MESSAGES: dict[int, tuple[str, str, str | None]] = {
    402: ("Insufficient balance: add credits to continue.", "invalid_request_error",
          "insufficient_balance"),
    403: ("This key is not allowed to use this model.", "invalid_request_error",
          "model_not_allowed"),
    408: ("The request timed out before the upload finished.", "server_error", None),
    429: ("Rate limit reached for this key; retry after a short wait.", "requests",
          "rate_limit_exceeded"),
    500: ("The server had an internal error while processing the request.", "server_error",
          None),
    502: ("Bad gateway: the upstream provider failed to answer.", "server_error", None),
    503: ("The service is temporarily overloaded; retry later.", "server_error", None),
    504: ("Gateway timeout: the upstream provider took too long.", "server_error", None),
}  # fmt: skip


# --------------------------------------------------------------------------- recognition


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float


def recognise(pcm: np.ndarray, rate: int = SAMPLE_RATE) -> list[Word]:
    """Words heard in mono PCM (int16 or float in [-1, 1]), with sample-accurate edges.

    A word is a run of 10 ms frames louder than -40 dBFS (runs < 30 ms apart merged), named
    by the FFT peak of the run; its edges are where |x| first and last reaches 10 % of the
    run's peak level, searched around the run's frame edges.
    """
    x = pcm.astype(np.float32)
    if pcm.dtype == np.int16:
        x /= 32768.0
    n = len(x)
    if n == 0:
        return []
    frame = max(1, round(rate * FRAME_SECONDS))
    count = -(-n // frame)
    padded = np.zeros(count * frame, dtype=np.float64)
    padded[:n] = x
    energy = np.einsum("ij,ij->i", padded.reshape(count, frame), padded.reshape(count, frame))
    sizes = np.full(count, frame, dtype=np.float64)
    sizes[-1] = n - (count - 1) * frame
    sound = energy / sizes > (10 ** (SOUND_DBFS / 20)) ** 2

    runs: list[list[int]] = []
    edges = np.flatnonzero(np.diff(np.concatenate(([0], sound.astype(np.int8), [0]))))
    merge_frames = round(MERGE_GAP_SECONDS / FRAME_SECONDS)
    for a, b in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
        if runs and a - runs[-1][1] < merge_frames:
            runs[-1][1] = b
        else:
            runs.append([a, b])

    words: list[Word] = []
    ax = np.abs(x)
    for i, (a, b) in enumerate(runs):
        s0, s1 = a * frame, min(n, b * frame)
        prev_end = runs[i - 1][1] * frame if i else 0
        next_start = runs[i + 1][0] * frame if i + 1 < len(runs) else n
        peak = float(np.percentile(ax[s0:s1], 99)) if s1 > s0 else 0.0
        threshold = max(EDGE_FRACTION * peak, EDGE_FLOOR)
        lo, hi = max(0, s0 - 2 * frame, prev_end), min(n, s0 + 2 * frame)
        hits = np.flatnonzero(ax[lo:hi] >= threshold)
        start = lo + int(hits[0]) if hits.size else s0
        lo, hi = max(start + 1, s1 - 2 * frame), min(n, s1 + 2 * frame, next_start)
        hits = np.flatnonzero(ax[lo:hi] >= threshold) if hi > lo else hits[:0]
        end = lo + int(hits[-1]) + 1 if hits.size else max(s1, start + 1)
        words.append(Word(_identify(x[start:end], rate), start / rate, end / rate))
    return words


def _identify(samples: np.ndarray, rate: int) -> str:
    limit = 2 * rate
    if len(samples) > limit:  # the middle two seconds are plenty
        first = (len(samples) - limit) // 2
        samples = samples[first : first + limit]
    if len(samples) >= 32:
        samples = samples * np.hanning(len(samples))
    size = max(1 << 15, 1 << math.ceil(math.log2(max(2, len(samples)))))
    spectrum = np.abs(np.fft.rfft(samples, n=size))
    spectrum[0] = 0.0
    freq = float(np.argmax(spectrum)) * rate / size
    return WORDS[int(np.argmin(np.abs(np.asarray(FREQS) - freq)))]


def segment_words(
    words: list[Word], gap: float = SEGMENT_GAP_SECONDS, max_length: float = SEGMENT_MAX_SECONDS
) -> list[list[Word]]:
    """Group words: a new segment after a gap >= `gap`, or once one spans >= `max_length`."""
    segments: list[list[Word]] = []
    for word in words:
        current = segments[-1] if segments else None
        if (
            current is None
            or word.start - current[-1].end >= gap
            or current[-1].end - current[0].start >= max_length
        ):
            segments.append([word])
        else:
            current.append(word)
    return segments


# --------------------------------------------------------------------------- rendering


def _timestamp(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{ms:03d}"


def _render_srt(segments: list[dict[str, Any]]) -> str:
    cues = []
    for i, s in enumerate(segments, 1):
        span = f"{_timestamp(s['start'], ',')} --> {_timestamp(s['end'], ',')}"
        cues.append(f"{i}\n{span}\n{s['text'].strip()}\n")
    return "\n".join(cues)


def _render_vtt(segments: list[dict[str, Any]]) -> str:
    cues = [
        f"{_timestamp(s['start'], '.')} --> {_timestamp(s['end'], '.')}\n{s['text'].strip()}\n"
        for s in segments
    ]
    return "WEBVTT\n\n" + "\n".join(cues)


def _integral_floats_to_int(value: Any) -> Any:
    """Portkey re-serialises JSON through JavaScript: 0.0 comes back as 0."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral_floats_to_int(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral_floats_to_int(v) for v in value]
    return value


def mask_key(key: str) -> str:
    """Show only the first 3 and last 4 characters, as OpenAI does in its 401 message."""
    if len(key) <= 8:
        return "*" * len(key)
    return key[:3] + "*" * (len(key) - 7) + key[-4:]


# --------------------------------------------------------------------------- records


@dataclass
class RequestRecord:
    """One request as the gateway saw it. Times are time.monotonic() values."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    received: float
    fields: dict[str, list[str]] = field(default_factory=dict)
    filename: str | None = None
    file_content_type: str | None = None
    file_bytes: int = 0
    body_bytes: int = 0
    sha256: str | None = None
    duration: float | None = None
    words: list[Word] = field(default_factory=list)
    status: int | None = None  # None: connection dropped (fault) or client went away
    fault: str | None = None  # "inject", "drop" or "client-gone"
    answered: float | None = None
    response: bytes = b""

    def field(self, name: str, default: str | None = None) -> str | None:
        """The last value given for a form field."""
        values = self.fields.get(name)
        return values[-1] if values else default

    @property
    def model(self) -> str | None:
        return self.field("model")

    @property
    def response_format(self) -> str | None:
        return self.field("response_format")

    @property
    def granularities(self) -> list[str]:
        return list(self.fields.get("timestamp_granularities[]", []))


@dataclass
class _Fault:
    kind: str  # "status" or "drop"
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | str | dict[str, Any] | None = None
    when: Callable[[RequestRecord], bool] | None = None


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class _ApiError(Exception):
    """An error answer. `level` is "provider" (the model's API), "router" (Requesty's own)
    or "gateway" (Portkey's own, answered as {"status": "failure", ...})."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        level: str = "provider",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.level = level
        self.headers = dict(headers or {})


@dataclass
class _Form:
    fields: dict[str, list[str]] = field(default_factory=dict)
    file_path: Path | None = None
    filename: str | None = None
    content_type: str | None = None
    file_bytes: int = 0
    sha256: str | None = None
    over_cap: bool = False
    has_file: bool = False
    error: str | None = None


# --------------------------------------------------------------------------- multipart


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    """Split `form-data; name="file"; filename="a.wav"` into its kind and parameters."""
    kind, _, rest = value.partition(";")
    params: dict[str, str] = {}
    pattern = r'\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)\s*;?'
    for match in re.finditer(pattern, rest):
        key, raw = match.group(1).lower(), match.group(2).strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[key] = raw
    if "filename*" in params:  # RFC 5987: charset'lang'percent-encoded
        from urllib.parse import unquote

        charset, _, encoded = params["filename*"].partition("'")
        encoded = encoded.partition("'")[2]
        params["filename"] = unquote(encoded, encoding=charset or "utf-8", errors="replace")
    return kind.strip().lower(), params


def _parse_multipart(
    chunks: Iterator[bytes], boundary: bytes, directory: Path, cap: int | None
) -> _Form:
    """Stream a multipart/form-data body: fields into memory, the file part to disk."""
    form = _Form()
    delimiter = b"\r\n--" + boundary
    buf = bytearray(b"\r\n")  # so the first boundary looks like every other one
    state = "preamble"
    name = ""
    is_file = False
    value = bytearray()
    sink: BinaryIO | None = None
    digest = hashlib.sha256()

    def write(data: bytes | bytearray) -> None:
        nonlocal sink
        if not data:
            return
        if is_file:
            form.file_bytes += len(data)
            if cap is not None and form.file_bytes > cap:
                form.over_cap = True
            if form.over_cap:
                return
            digest.update(data)
            if sink is None:
                assert form.file_path is not None
                sink = form.file_path.open("wb")
            sink.write(data)
        elif len(value) + len(data) <= MAX_FIELD_BYTES:
            value.extend(data)
        else:
            form.error = f"form field '{name}' is too large"

    try:
        for chunk in chunks:
            buf += chunk
            while True:
                if state == "preamble":
                    i = buf.find(delimiter)
                    if i < 0:
                        del buf[: max(0, len(buf) - len(delimiter))]
                        break
                    del buf[: i + len(delimiter)]
                    state = "after"
                elif state == "after":
                    if len(buf) < 2:
                        break
                    if buf[:2] == b"--":
                        state = "done"
                        continue
                    i = buf.find(b"\r\n\r\n")
                    if i < 0:
                        if len(buf) > MAX_HEADER_BLOCK:
                            form.error = "a part's header block is too large"
                            return form
                        break
                    block = bytes(buf[:i]).decode("utf-8", "replace")
                    del buf[: i + 4]
                    headers: dict[str, str] = {}
                    for line in block.split("\r\n"):
                        key, sep, val = line.partition(":")
                        if sep:
                            headers[key.strip().lower()] = val.strip()
                    _, params = _header_params(headers.get("content-disposition", ""))
                    name = params.get("name", "")
                    value = bytearray()
                    is_file = name == "file" and not form.has_file
                    if is_file:
                        form.has_file = True
                        form.filename = params.get("filename")
                        form.content_type = headers.get("content-type")
                        ext = Path(form.filename or "").suffix.lower().lstrip(".")
                        safe = ext if re.fullmatch(r"[a-z0-9]{1,8}", ext) else "bin"
                        form.file_path = directory / f"upload.{safe}"
                    state = "body"
                elif state == "body":
                    i = buf.find(delimiter)
                    if i >= 0:
                        write(buf[:i])
                        del buf[: i + len(delimiter)]
                        if not is_file:
                            form.fields.setdefault(name, []).append(
                                bytes(value).decode("utf-8", "replace")
                            )
                        state = "after"
                        continue
                    keep = len(delimiter) - 1
                    if len(buf) > keep:
                        write(buf[:-keep])
                        del buf[:-keep]
                    break
                else:  # done: ignore the epilogue
                    buf.clear()
                    break
    finally:
        if sink is not None:
            sink.close()
    if state != "done" and form.error is None:
        form.error = "the multipart body ended before its closing boundary"
    if form.has_file and not form.over_cap:
        form.sha256 = digest.hexdigest()
        if form.file_path is not None and not form.file_path.exists():
            form.file_path.touch()
    return form


# --------------------------------------------------------------------------- server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256  # listen backlog: benchmarks open many connections at once

    def __init__(self, port: int, gateway: FakeGateway) -> None:
        self.gateway = gateway
        self.tracked_lock = threading.Lock()
        self.connections: set[socket.socket] = set()
        self.threads: set[threading.Thread] = set()
        super().__init__(("127.0.0.1", port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection, args=(request, client_address), daemon=True
        )
        with self.tracked_lock:
            self.connections.add(request)
            self.threads.add(thread)
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            if self.gateway.verbose:
                self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self.tracked_lock:
                self.connections.discard(request)
                self.threads.discard(threading.current_thread())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120  # seconds a connection may sit idle or stall mid-body
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.gateway.verbose:
            super().log_message(format, *args)

    def do_POST(self) -> None:
        self.server.gateway._serve(self, "POST")

    def do_GET(self) -> None:
        self.server.gateway._serve(self, "GET")


class FakeGateway:
    """An OpenAI-compatible transcription endpoint on 127.0.0.1 that really listens to the
    audio. All switches are plain attributes, safe to change between requests."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        mode: str = "openai",
        prefix: str = "/v1",
        port: int = 0,
        auth_header: str = "authorization",
        auth_scheme: str | None = "Bearer",
        models: Mapping[str, ModelSpec] | None = None,
        default_model: str | None = None,
        upload_cap: int | None = -1,
        strict_extension: bool = True,
        min_duration: float = 0.1,
        latency: float = 0.0,
        latency_per_audio_second: float = 0.0,
        usage: str | None = None,
        portkey_api_key: str | None = None,
        portkey_providers: tuple[str, ...] = ("openai", "groq", "azure-openai"),
        virtual_key: str | None = None,
        requesty_providers: tuple[str, ...] = ("openai", "groq"),
        verbose: bool = False,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if usage not in (None, "duration", "tokens"):
            raise ValueError("usage must be None, 'duration' or 'tokens'")
        self.api_key = api_key
        self.mode = mode
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.auth_header = auth_header.lower()
        self.auth_scheme = auth_scheme
        self.models: dict[str, ModelSpec] = dict(DEFAULT_MODELS if models is None else models)
        self.default_model = default_model
        self.upload_cap = DEFAULT_UPLOAD_CAP[mode] if upload_cap == -1 else upload_cap
        self.strict_extension = strict_extension
        self.min_duration = min_duration
        self.latency = latency
        self.latency_per_audio_second = latency_per_audio_second
        self.usage = usage
        self.portkey_api_key = portkey_api_key
        self.portkey_providers = portkey_providers
        self.virtual_key = virtual_key
        self.requesty_providers = requesty_providers
        self.verbose = verbose

        self.requests: list[RequestRecord] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.errors: list[str] = []  # tracebacks of bugs in this gateway (answered as 500)
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._counter = 0
        self._server = _Server(port, self)
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    @property
    def transcriptions_url(self) -> str:
        return f"{self.base_url}/audio/transcriptions"

    @property
    def translations_url(self) -> str:
        return f"{self.base_url}/audio/translations"

    def start(self) -> FakeGateway:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"FakeGateway:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, cut open connections, end our ffmpeg processes, join threads."""
        self._stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        with self._server.tracked_lock:
            connections = list(self._server.connections)
            threads = list(self._server.threads)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + 5
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._server.server_close()

    def __enter__(self) -> FakeGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- test controls

    def inject(
        self,
        status: int,
        times: int = 1,
        headers: Mapping[str, str] | None = None,
        body: bytes | str | dict[str, Any] | None = None,
        *,
        when: Callable[[RequestRecord], bool] | None = None,
    ) -> None:
        """Answer the next `times` requests (those matching `when`, if given) with `status`
        before any normal processing. body None: an error body in the mode's shape."""
        fault = _Fault("status", status, {k.lower(): v for k, v in (headers or {}).items()},
                       body, when)  # fmt: skip
        with self._lock:
            self._faults.extend(fault for _ in range(times))

    def drop_connection(
        self, times: int = 1, *, when: Callable[[RequestRecord], bool] | None = None
    ) -> None:
        """Read the next `times` requests, then close the socket without answering."""
        with self._lock:
            self._faults.extend(_Fault("drop", when=when) for _ in range(times))

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def reset(self) -> None:
        """Forget recorded requests, the in-flight peak and queued faults."""
        with self._lock:
            self.requests.clear()
            self._faults.clear()
            self.max_in_flight = self.in_flight

    @property
    def answered(self) -> list[RequestRecord]:
        """Records of requests that got a 200."""
        return [r for r in list(self.requests) if r.status == 200]

    # ----------------------------------------------------------------- serving

    def _serve(self, h: _Handler, method: str) -> None:
        split = urlsplit(h.path)
        headers: dict[str, str] = {}
        for key, value in h.headers.items():
            key = key.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        record = RequestRecord(method, split.path, split.query, headers, time.monotonic())
        with self._lock:
            self._counter += 1
            request_id = f"req_{self._counter:06d}"
            self.requests.append(record)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            try:
                reply = self._answer(h, method, record)
            except Exception as exc:  # a bug in this file: say so loudly, never look like a 5xx
                detail = "".join(traceback.format_exception(exc))
                self.errors.append(detail)
                print(f"FakeGateway internal error:\n{detail}", file=sys.stderr)
                record.fault = "gateway-bug"
                h.close_connection = True
                reply = _Reply(500, json.dumps({"error": {
                    "message": f"FakeGateway internal error (a bug in tests/gateway.py): {exc!r}",
                    "type": "fake_gateway_bug", "param": None, "code": "fake_gateway_bug",
                }}).encode())  # fmt: skip
            if reply is None:  # dropped on purpose or the client went away
                h.close_connection = True
                record.answered = time.monotonic()
                with contextlib.suppress(OSError):
                    h.connection.shutdown(socket.SHUT_RDWR)
                return
            reply.headers.setdefault("x-request-id", request_id)
            record.status = reply.status
            record.response = reply.body
            record.answered = time.monotonic()
            h.send_response(reply.status)
            h.send_header("Content-Type", reply.content_type)
            h.send_header("Content-Length", str(len(reply.body)))
            for key, value in reply.headers.items():
                h.send_header(key, value)
            if h.close_connection:
                h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(reply.body)
            h.wfile.flush()
        finally:
            with self._lock:
                self.in_flight -= 1

    def _answer(self, h: _Handler, method: str, record: RequestRecord) -> _Reply | None:
        path = record.path.rstrip("/")
        if method == "GET":
            for _ in self._body_chunks(h, record):
                pass
            if path == f"{self.prefix}/models":
                data = [{"id": m, "object": "model", "owned_by": "fake"} for m in self.models]
                return self._json(200, {"object": "list", "data": data})
            return self._error_reply(_ApiError(404, f"Invalid URL (GET {record.path})"))
        task = {
            f"{self.prefix}/audio/transcriptions": "transcribe",
            f"{self.prefix}/audio/translations": "translate",
        }.get(path)
        with tempfile.TemporaryDirectory(prefix="fakegw-") as tmp:
            try:
                form = self._read_form(h, record, Path(tmp))
            except (OSError, ValueError):
                record.fault = "client-gone"
                return None
            self._sleep(self.latency)
            fault = self._take_fault(record)
            if fault is not None and fault.kind == "drop":
                record.fault = "drop"
                return None
            if fault is not None:
                record.fault = "inject"
                return self._fault_reply(fault)
            if task is None:
                h.close_connection = h.close_connection or form.error is not None
                return self._error_reply(_ApiError(404, f"Invalid URL (POST {record.path})"))
            try:
                return self._transcribe(record, form, task)
            except _ApiError as error:
                return self._error_reply(error, record)

    def _read_form(self, h: _Handler, record: RequestRecord, directory: Path) -> _Form:
        content_type = record.headers.get("content-type", "")
        kind, params = _header_params(content_type)
        boundary = params.get("boundary", "")
        counted = self._body_chunks(h, record)
        if kind != "multipart/form-data" or not boundary:
            for _ in counted:  # drain so the connection stays usable
                pass
            return _Form(error="the body must be multipart/form-data with a boundary")
        form = _parse_multipart(counted, boundary.encode("latin-1"), directory, self.upload_cap)
        for _ in counted:  # drain whatever follows a malformed body
            pass
        record.fields = form.fields
        record.filename = form.filename
        record.file_content_type = form.content_type
        record.file_bytes = form.file_bytes
        record.sha256 = form.sha256
        return form

    def _body_chunks(self, h: _Handler, record: RequestRecord) -> Iterator[bytes]:
        if "chunked" in record.headers.get("transfer-encoding", "").lower():
            while True:
                line = h.rfile.readline(1024)
                if not line.endswith(b"\n"):
                    raise ConnectionError("chunked body ended early")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    for _ in range(100):  # trailers up to the blank line
                        if h.rfile.readline(8192) in (b"\r\n", b"\n", b""):
                            break
                    return
                remaining = size
                while remaining:
                    data = h.rfile.read(min(READ_CHUNK, remaining))
                    if not data:
                        raise ConnectionError("chunked body ended early")
                    remaining -= len(data)
                    record.body_bytes += len(data)
                    yield data
                h.rfile.readline(8)
        remaining = int(record.headers.get("content-length", "0") or 0)
        while remaining > 0:
            data = h.rfile.read(min(READ_CHUNK, remaining))
            if not data:
                raise ConnectionError("body ended early")
            remaining -= len(data)
            record.body_bytes += len(data)
            yield data

    def _take_fault(self, record: RequestRecord) -> _Fault | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.when is None or fault.when(record):
                    return self._faults.pop(i)
        return None

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(min(seconds, MAX_SLEEP_SECONDS))

    # ----------------------------------------------------------------- the API

    def _transcribe(self, record: RequestRecord, form: _Form, task: str) -> _Reply:
        headers = record.headers
        provider = self._portkey_gate(headers) if self.mode == "portkey" else None
        router = "router" if self.mode == "requesty" else "provider"
        if form.over_cap:
            raise _ApiError(
                413,
                f"Request entity too large: the file is {form.file_bytes} bytes; "
                f"the maximum upload size is {self.upload_cap} bytes.",
                param="file",
                code="payload_too_large",
                level=router,
            )
        self._check_auth(headers, provider)
        if form.error is not None:
            raise _ApiError(400, f"Malformed request: {form.error}.", level=router)

        def get(name: str) -> str | None:
            values = form.fields.get(name)
            return values[-1] if values else None

        model = get("model") or self.default_model
        if not model:
            raise _ApiError(400, "Missing required parameter: 'model'.", param="model",
                            code="missing_required_parameter", level=router)  # fmt: skip
        if self.mode == "requesty":
            vendor, slash, bare = model.partition("/")
            if not slash or vendor not in self.requesty_providers:
                raise _ApiError(
                    404,
                    f"Model '{model}' not found. Models are named '<provider>/<model>', "
                    "e.g. 'openai/whisper-1'.",
                    param="model", code="model_not_found", level="router",
                )  # fmt: skip
            model = bare
        spec = self.models.get(model)
        if spec is None:
            raise _ApiError(
                404,
                f"The model '{model}' does not exist or you do not have access to it.",
                param="model", code="model_not_found", level=router,
            )  # fmt: skip
        fmt = get("response_format") or "json"
        if self.mode == "requesty" and fmt not in ("json", "verbose_json"):
            raise _ApiError(
                400,
                f"response_format '{fmt}' is not supported by this router; "
                "use 'json' or 'verbose_json'.",
                param="response_format", code="unsupported_value", level="router",
            )  # fmt: skip
        if fmt not in ALL_FORMATS:
            raise _ApiError(
                400,
                f"Invalid value for response_format: '{fmt}'. Supported values are: "
                + ", ".join(f"'{f}'" for f in ALL_FORMATS) + ".",
                param="response_format", code="invalid_value",
            )  # fmt: skip
        if fmt not in spec.formats:
            allowed = " or ".join(f"'{f}'" for f in ALL_FORMATS if f in spec.formats)
            raise _ApiError(
                400,
                f"response_format '{fmt}' is not compatible with model '{model}'. "
                f"Use {allowed} instead.",
                param="response_format", code="unsupported_value",
            )  # fmt: skip
        if task == "translate" and not spec.translations:
            raise _ApiError(400, f"Model '{model}' does not support translations.",
                            param="model", code="unsupported_value")  # fmt: skip
        language = get("language")
        if task == "transcribe" and language and not re.fullmatch(r"[A-Za-z]{2}", language):
            raise _ApiError(
                400,
                f"Invalid language '{language}'. The language must be an ISO-639-1 code "
                "such as 'en'.",
                param="language", code="invalid_value",
            )  # fmt: skip
        temperature = 0.0
        if get("temperature") is not None:
            try:
                temperature = float(get("temperature") or "")
            except ValueError:
                temperature = -1.0
            if not 0.0 <= temperature <= 1.0:
                raise _ApiError(400, "temperature must be a number between 0 and 1.",
                                param="temperature", code="invalid_value")  # fmt: skip
        granularities = form.fields.get("timestamp_granularities[]", []) + form.fields.get(
            "timestamp_granularities", []
        )
        bad = [g for g in granularities if g not in ("word", "segment")]
        if bad:
            raise _ApiError(
                400,
                f"Invalid value for timestamp_granularities[]: '{bad[0]}'. "
                "Supported values are: 'word', 'segment'.",
                param="timestamp_granularities", code="invalid_value",
            )  # fmt: skip
        stream = (get("stream") or "").lower() == "true"
        if stream and not spec.streaming:
            raise _ApiError(400, f"Streaming is not supported for model '{model}'.",
                            param="stream", code="unsupported_value")  # fmt: skip
        if not form.has_file:
            raise _ApiError(400, "Missing required parameter: 'file'.", param="file",
                            code="missing_required_parameter")  # fmt: skip

        pcm = self._decode(form)
        duration = len(pcm) / SAMPLE_RATE
        record.duration = duration
        if duration < self.min_duration:
            raise _ApiError(
                400,
                f"Audio file is too short: {duration:.3f} seconds; the minimum audio length "
                f"is {self.min_duration:g} seconds.",
                param="file", code="audio_too_short",
            )  # fmt: skip
        if spec.max_seconds is not None and duration > spec.max_seconds:
            raise _ApiError(
                400,
                f"Audio file is too long: {duration:.1f} seconds; the maximum for this "
                f"model is {spec.max_seconds:g} seconds.",
                param="file", code="invalid_value",
            )  # fmt: skip
        self._sleep(self.latency_per_audio_second * duration)
        words = recognise(pcm)
        record.words = words
        return self._success(
            task, fmt, words, duration, temperature, granularities, get("prompt") or "",
            stream, provider,
        )  # fmt: skip

    def _portkey_gate(self, headers: Mapping[str, str]) -> str:
        """Portkey's own checks; returns the provider the request is routed to."""
        key = headers.get("x-portkey-api-key")
        if not key or (self.portkey_api_key is not None and key != self.portkey_api_key):
            raise _ApiError(401, "Invalid or missing x-portkey-api-key header.",
                            level="gateway")  # fmt: skip
        provider = headers.get("x-portkey-provider")
        if provider:
            if provider not in self.portkey_providers:
                raise _ApiError(400, f"Invalid provider: {provider}", level="gateway")
            return provider
        virtual = headers.get("x-portkey-virtual-key")
        if virtual:
            if self.virtual_key is not None and virtual != self.virtual_key:
                raise _ApiError(401, "Invalid virtual key.", level="gateway")
            return "openai"
        config = headers.get("x-portkey-config")
        if config:
            if config.lstrip().startswith("{"):
                try:
                    parsed = json.loads(config)
                except ValueError:
                    raise _ApiError(400, "Invalid config passed: not valid JSON.",
                                    level="gateway") from None  # fmt: skip
                if isinstance(parsed, dict) and isinstance(parsed.get("provider"), str):
                    return str(parsed["provider"])
            return "openai"
        raise _ApiError(
            400,
            "Either x-portkey-config, x-portkey-virtual-key or x-portkey-provider header "
            "is required.",
            level="gateway",
        )

    def _check_auth(self, headers: Mapping[str, str], provider: str | None) -> None:
        if self.mode == "portkey":
            if not headers.get("x-portkey-provider") or self.api_key is None:
                return  # a virtual key or config carries the provider key
            given = headers.get("authorization") or "Bearer undefined"
            scheme: str | None = "Bearer"
        elif self.api_key is None:
            return
        else:
            given = headers.get(self.auth_header, "")
            scheme = self.auth_scheme
        level = "router" if self.mode == "requesty" else "provider"
        if not given:
            shown = "-".join(part.capitalize() for part in self.auth_header.split("-"))
            how = f"{shown}: {scheme + ' ' if scheme else ''}<key>"
            raise _ApiError(401, f"You didn't provide an API key. Send it as '{how}'.",
                            level=level)  # fmt: skip
        key = given
        if scheme:
            word, _, rest = given.partition(" ")
            key = rest.strip() if word.lower() == scheme.lower() else given
        if key != self.api_key:
            raise _ApiError(401, f"Incorrect API key provided: {mask_key(key)}.",
                            code="invalid_api_key", level=level)  # fmt: skip

    def _decode(self, form: _Form) -> np.ndarray:
        ext = Path(form.filename or "").suffix.lower().lstrip(".")
        if ext not in ACCEPTED_EXTENSIONS or form.file_path is None:
            raise _ApiError(400, f"Invalid file format. Supported formats: {_FORMATS_LIST}",
                            param="file", code="invalid_value")  # fmt: skip
        # One ffmpeg run both decodes and reports the container its probe detected (the
        # same libavformat probe ffprobe uses), saving a process per request.
        code, out, err = self._run([
            "ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info",
            "-i", str(form.file_path),
            "-vn", "-f", "s16le", "-ac", "1", "-ar", str(SAMPLE_RATE), "pipe:1",
        ])  # fmt: skip
        found = re.search(r"^Input #0, (.+?), from ", err.decode("utf-8", "replace"), re.M)
        names = set(found.group(1).split(",")) if found else set()
        if self.strict_extension and names and not names & _CONTAINERS[ext]:
            raise _ApiError(
                400,
                f"Invalid file format: the content is {','.join(sorted(names))}, not .{ext}. "
                f"Supported formats: {_FORMATS_LIST}",
                param="file", code="invalid_value",
            )  # fmt: skip
        if code != 0 or not names:
            raise _ApiError(
                400,
                f"Invalid file format: the audio could not be decoded. "
                f"Supported formats: {_FORMATS_LIST}",
                param="file", code="invalid_value",
            )  # fmt: skip
        return np.frombuffer(out[: len(out) // 2 * 2], dtype="<i2")

    def _run(self, cmd: list[str]) -> tuple[int, bytes, bytes]:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        with self._lock:
            self._procs.add(proc)
        try:
            out, err = proc.communicate(timeout=TOOL_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return -1, b"", b""
        finally:
            with self._lock:
                self._procs.discard(proc)
        return proc.returncode, out, err

    def _success(
        self,
        task: str,
        fmt: str,
        words: list[Word],
        duration: float,
        temperature: float,
        granularities: list[str],
        prompt: str,
        stream: bool,
        provider: str | None,
    ) -> _Reply:
        text = " ".join(w.word for w in words)
        segments = []
        for i, group in enumerate(segment_words(words)):
            start = round(group[0].start, 3)
            segments.append({
                "id": i,
                "seek": int(start // 30) * 3000,
                "start": start,
                "end": round(group[-1].end, 3),
                "text": " " + " ".join(w.word for w in group),
                "tokens": [50364 + WORDS.index(w.word) for w in group],
                "temperature": temperature,
                "avg_logprob": -0.25,
                "compression_ratio": 1.2,
                "no_speech_prob": 0.01,
            })  # fmt: skip
        usage: dict[str, Any] | None = None
        if self.usage == "duration":
            usage = {"type": "duration", "seconds": round(duration, 1)}
        elif self.usage == "tokens":
            audio_tokens = math.ceil(duration * 10)
            text_tokens = len(prompt.split())
            usage = {
                "type": "tokens",
                "input_tokens": audio_tokens + text_tokens,
                "output_tokens": len(words),
                "total_tokens": audio_tokens + text_tokens + len(words),
                "input_token_details": {"audio_tokens": audio_tokens, "text_tokens": text_tokens},
            }
        if stream:
            events = [{"type": "transcript.text.delta", "delta": w.word + " "} for w in words]
            events.append({"type": "transcript.text.done", "text": text})
            body = "".join(f"data: {json.dumps(e)}\n\n" for e in events)
            return _Reply(200, body.encode(), "text/event-stream; charset=utf-8")
        payload: dict[str, Any] | None = None
        plain: str | None = None
        content_type = "text/plain; charset=utf-8"
        if fmt == "json":
            payload = {"text": text}
        elif fmt == "verbose_json":
            payload = {"task": task, "language": "english", "duration": round(duration, 4),
                       "text": text}  # fmt: skip
            if not granularities or "segment" in granularities:
                payload["segments"] = segments
            if "word" in granularities:
                payload["words"] = [
                    {"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3)}
                    for w in words
                ]
        elif fmt == "text":
            plain = text + "\n"
        elif fmt == "srt":
            plain = _render_srt(segments)
        else:
            plain = _render_vtt(segments)
            content_type = "text/vtt; charset=utf-8"
        if payload is not None:
            if usage is not None:
                payload["usage"] = usage
            if self.mode == "portkey":
                payload = _integral_floats_to_int(payload)
            return self._json(200, payload)
        assert plain is not None
        if self.mode == "portkey":
            return self._json(200, {"html-message": plain})
        return _Reply(200, plain.encode("utf-8"), content_type)

    # ----------------------------------------------------------------- error shapes

    @staticmethod
    def _json(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> _Reply:
        return _Reply(status, json.dumps(payload).encode("utf-8"), headers=dict(headers or {}))

    def _error_body(self, error: _ApiError, provider: str) -> dict[str, Any]:
        if self.mode == "portkey" and error.level == "gateway":
            return {"status": "failure", "message": error.message}
        body: dict[str, Any] = {
            "message": error.message,
            "type": error.type,
            "param": error.param,
            "code": error.code,
        }
        if self.mode == "requesty":
            body["origin"] = "router" if error.level == "router" else "provider"
        if self.mode == "portkey":
            body["message"] = f"{provider} error: {error.message}"
            return {"error": body, "provider": provider}
        return {"error": body}

    def _error_reply(self, error: _ApiError, record: RequestRecord | None = None) -> _Reply:
        provider = "openai"
        if record is not None:
            provider = record.headers.get("x-portkey-provider") or "openai"
        return self._json(error.status, self._error_body(error, provider), error.headers)

    def _fault_reply(self, fault: _Fault) -> _Reply:
        if fault.body is None:
            message, kind, code = _DEFAULT_FAULT_MESSAGES.get(
                fault.status,
                (
                    f"Injected error {fault.status}.",
                    "server_error" if fault.status >= 500 else "invalid_request_error",
                    None,
                ),
            )
            error = _ApiError(fault.status, message, type=kind, code=code, level="provider")
            return self._json(fault.status, self._error_body(error, "openai"), fault.headers)
        if isinstance(fault.body, dict):
            return self._json(fault.status, fault.body, fault.headers)
        raw = fault.body.encode("utf-8") if isinstance(fault.body, str) else fault.body
        try:
            json.loads(raw)
            content_type = "application/json"
        except ValueError:
            content_type = "text/plain; charset=utf-8"
        return _Reply(fault.status, raw, content_type, dict(fault.headers))


# --------------------------------------------------------------------------- standalone


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the sttcli test gateway on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key")
    parser.add_argument("--mode", choices=MODES, default="openai")
    parser.add_argument("--prefix", default="/v1")
    parser.add_argument("--auth-header", default="authorization")
    parser.add_argument("--auth-scheme", default="Bearer", help="'' for a bare key")
    parser.add_argument("--upload-cap", type=int, default=-1, help="bytes; -1: mode default")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--latency-per-audio-second", type=float, default=0.0)
    parser.add_argument("--usage", choices=("duration", "tokens"))
    parser.add_argument("--portkey-api-key")
    parser.add_argument("--no-strict-extension", action="store_true")
    parser.add_argument("--serve-seconds", type=float, default=24 * 3600.0)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    gateway = FakeGateway(
        api_key=args.api_key,
        mode=args.mode,
        prefix=args.prefix,
        port=args.port,
        auth_header=args.auth_header,
        auth_scheme=args.auth_scheme or None,
        upload_cap=args.upload_cap,
        latency=args.latency,
        latency_per_audio_second=args.latency_per_audio_second,
        usage=args.usage,
        portkey_api_key=args.portkey_api_key,
        strict_extension=not args.no_strict_extension,
        verbose=args.verbose,
    )
    with gateway:
        print(gateway.base_url, flush=True)
        deadline = time.monotonic() + args.serve_seconds
        try:
            while time.monotonic() < deadline:
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
