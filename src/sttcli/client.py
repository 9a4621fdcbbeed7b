"""The only place that speaks HTTP: multipart uploads, auth headers, retries, timeouts,
and mapping endpoint failures to sttcli's errors.

Secrets live in `Settings`; every message built here is scrubbed of them.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from sttcli import __version__
from sttcli.config import Settings, redact
from sttcli.errors import ConfigError, EndpointError, RequestRejected, SttcliError
from sttcli.events import Emit, Event, Kind, ignore

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
RETRY_AFTER_CAP = 300.0
MAX_MESSAGE = 300


@dataclass(frozen=True)
class Upload:
    path: Path
    filename: str
    content_type: str


@dataclass(frozen=True)
class RequestOptions:
    task: str  # "transcribe" or "translate"
    model: str
    response_format: str
    language: str | None = None
    prompt: str | None = None
    temperature: float | None = None
    granularities: tuple[str, ...] = ()

    def fields(self) -> list[tuple[str, str]]:
        pairs = [("model", self.model), ("response_format", self.response_format)]
        if self.language and self.task == "transcribe":
            pairs.append(("language", self.language))
        if self.prompt:
            pairs.append(("prompt", self.prompt))
        if self.temperature is not None:
            pairs.append(("temperature", f"{self.temperature:g}"))
        if self.response_format == "verbose_json":
            pairs += [("timestamp_granularities[]", g) for g in self.granularities]
        return pairs


@dataclass(frozen=True)
class Response:
    body: bytes
    content_type: str
    status: int
    request_id: str | None


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0

    def backoff(self, attempt: int) -> float:
        delay: float = min(self.base_delay * 2.0**attempt, self.max_delay)
        return delay * random.uniform(0.75, 1.0)


class Client:
    """One httpx.AsyncClient and one semaphore bounding uploads across every file."""

    def __init__(
        self,
        settings: Settings,
        *,
        concurrency: int = 4,
        timeout: float = 600.0,
        retry: RetryPolicy | None = None,
        emit: Emit = ignore,
    ) -> None:
        self.settings = settings
        self.retry = retry or RetryPolicy()
        self.emit = emit
        self._semaphore = asyncio.Semaphore(concurrency)
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=15.0),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            headers={"User-Agent": f"sttcli/{__version__}"},
            follow_redirects=True,
        )

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.aclose()

    def url(self, task: str) -> str:
        endpoint = "translations" if task == "translate" else "transcriptions"
        return f"{self.settings.base_url}/audio/{endpoint}"

    async def send(self, upload: Upload, options: RequestOptions, *, label: str) -> Response:
        """POST one file; retries what may succeed later; raises SttcliError otherwise."""
        async with self._semaphore:
            attempt = 0
            while True:
                try:
                    response = await self._post_once(upload, options, label)
                except (httpx.TimeoutException, httpx.TransportError) as exc:
                    failure: SttcliError = _transport_error(exc, self.url(options.task))
                    wait = self.retry.backoff(attempt)
                else:
                    if response.status_code < 400:
                        return _response(response)
                    failure = self._http_error(response)
                    if response.status_code not in RETRY_STATUSES:
                        raise failure
                    wait = self._wait_before_retry(response, attempt)
                if attempt >= self.retry.retries:
                    raise failure
                attempt += 1
                self.emit(
                    Event(
                        Kind.RETRY,
                        label,
                        f"{failure.cause}; retry {attempt}/{self.retry.retries} in {wait:.1f} s",
                        seconds=wait,
                    )
                )
                await asyncio.sleep(wait)

    async def _post_once(
        self, upload: Upload, options: RequestOptions, label: str
    ) -> httpx.Response:
        started = time.monotonic()
        self.emit(Event(Kind.DEBUG, label, self._describe_request(upload, options)))
        with upload.path.open("rb") as handle:
            response = await self._http.post(
                self.url(options.task),
                params=dict(self.settings.query),
                headers=self.settings.request_headers(),
                data=dict(_group(options.fields())),
                files={"file": (upload.filename, handle, upload.content_type)},
            )
        await response.aread()
        elapsed = time.monotonic() - started
        request_id = response.headers.get("x-request-id", "-")
        self.emit(
            Event(
                Kind.DEBUG,
                label,
                f"HTTP {response.status_code} in {elapsed:.2f} s, "
                f"{len(response.content)} bytes, request id {request_id}",
            )
        )
        return response

    def _describe_request(self, upload: Upload, options: RequestOptions) -> str:
        headers = dict(self.settings.headers)
        headers.update({k: "<redacted>" for k in self.settings.secret_headers})
        if self.settings.api_key is not None:
            headers[self.settings.profile.auth_header] = "<redacted>"
        fields = ", ".join(f"{k}={v!r}" for k, v in options.fields() if k != "prompt")
        return (
            f"POST {self.url(options.task)} file={upload.filename} "
            f"({upload.path.stat().st_size} bytes) {fields} headers={sorted(headers)}"
        )

    def _wait_before_retry(self, response: httpx.Response, attempt: int) -> float:
        asked = retry_after(response.headers)
        if asked is None:
            return self.retry.backoff(attempt)
        if asked > RETRY_AFTER_CAP:
            self.emit(
                Event(
                    Kind.NOTICE,
                    "",
                    f"the endpoint asked to wait {asked:.0f} s; waiting {RETRY_AFTER_CAP:.0f} s",
                )
            )
        return min(asked, RETRY_AFTER_CAP)

    def _http_error(self, response: httpx.Response) -> SttcliError:
        message = redact(endpoint_message(response), self.settings.secrets())
        return error_for_status(
            response.status_code, message, self.settings, _error_detail(response)
        )


def _group(pairs: list[tuple[str, str]]) -> dict[str, str | list[str]]:
    grouped: dict[str, str | list[str]] = {}
    for key, value in pairs:
        if key.endswith("[]"):
            existing = grouped.setdefault(key, [])
            assert isinstance(existing, list)
            existing.append(value)
        else:
            grouped[key] = value
    return grouped


def _response(response: httpx.Response) -> Response:
    return Response(
        body=response.content,
        content_type=response.headers.get("content-type", ""),
        status=response.status_code,
        request_id=response.headers.get("x-request-id"),
    )


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds the server asked us to wait: retry-after-ms, then retry-after as seconds
    or an HTTP date."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def endpoint_message(response: httpx.Response) -> str:
    """The human message in an error body, whatever shape the gateway used."""
    try:
        data: Any = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        text = response.content.decode("utf-8", errors="replace").strip()
        return _shorten(" ".join(text.split())) or response.reason_phrase
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return _shorten(str(error["message"]))
        if isinstance(error, str) and error:
            return _shorten(error)
        if data.get("message"):
            return _shorten(str(data["message"]))
    return response.reason_phrase


def _error_detail(response: httpx.Response) -> dict[str, Any]:
    try:
        data = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return {}
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else {}


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def error_for_status(
    status: int, message: str, settings: Settings, detail: dict[str, Any]
) -> SttcliError:
    cause = f"HTTP {status} from {settings.profile.name}: {message}"
    param = str(detail.get("param") or "") or None
    code = str(detail.get("code") or "") or None
    if status in (401, 403):
        return ConfigError(cause, hint=_auth_hint(settings, status))
    if status == 402:
        return ConfigError(cause, hint="the account's balance is exhausted; add credit")
    if status == 404:
        return ConfigError(
            cause, hint=f"check --model ({settings.model}) and --base-url ({settings.base_url})"
        )
    if status == 413:
        return RequestRejected(
            cause,
            status=status,
            input_fault=True,
            hint="the endpoint's upload limit is lower than assumed; pass a smaller "
            "--upload-cap-mb",
        )
    if status in RETRY_STATUSES:
        hint = (
            "rate limited: lower --concurrency or try again later"
            if status == 429
            else "the endpoint failed; try again later"
        )
        return EndpointError(cause, status=status, hint=hint)
    return RequestRejected(
        cause,
        status=status,
        param=param,
        code=code,
        input_fault=param == "file" or "file format" in message.lower(),
    )


def _auth_hint(settings: Settings, status: int) -> str:
    profile = settings.profile
    if _portkey_without_provider_key(settings):
        return (
            "Portkey sent the provider no key: set e.g. OPENAI_API_KEY and pass "
            "--portkey-provider openai, or use --portkey-virtual-key"
        )
    if settings.api_key is None:
        names = " or ".join((*profile.key_envs, "STTCLI_API_KEY"))
        return f"no key was sent; set {names}"
    if status == 403:
        return f"the key from {settings.key_source} may not use model {settings.model}"
    return f"check the key in {settings.key_source} (gateway {profile.name})"


def _portkey_without_provider_key(settings: Settings) -> bool:
    """Routed to a provider by header but with no Authorization: the open-source Portkey
    gateway then forwards 'Bearer undefined', and the provider's 401 is about that."""
    names = {name.lower() for name in (*settings.headers, *settings.secret_headers)}
    return "x-portkey-provider" in names and "authorization" not in names


def _transport_error(exc: Exception, url: str) -> EndpointError:
    if isinstance(exc, httpx.TimeoutException):
        return EndpointError(
            f"no answer from {url} in time ({type(exc).__name__})",
            hint="try again later, or raise --timeout",
        )
    return EndpointError(
        f"cannot reach {url} ({type(exc).__name__})",
        hint="check --base-url and the network",
    )
