"""One recording end to end: probe, decide how to ask, split if needed, upload, stitch.

Knows nothing of terminals: it reports through `Emit` events and returns a `Result`.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sttcli import chunking, media, stitch, utterances
from sttcli.chunking import Chunk, SplitPlan
from sttcli.client import Client, RequestOptions, Upload
from sttcli.config import Settings
from sttcli.errors import ConfigError, RequestRejected, SttcliError
from sttcli.events import Emit, Event, Kind
from sttcli.plan import Decision, Job, Mode, check_model, decide, timestamp_formats
from sttcli.transcript import (
    ResponseFormatError,
    Transcript,
    Usage,
    parse_response,
    unwrap_body,
)
from sttcli.writers import OutputFormat, format_timestamp

CARRY_PROMPT_CHARS = 600
DURATION_CAP_PATTERN = re.compile(r"(\d+(?:\.\d+)?)\s*(?:s\b|sec|second)", re.IGNORECASE)


@dataclass
class Result:
    transcript: Transcript | None = None
    passthrough: str | None = None  # the endpoint's own body, for unsplit json/text
    plan: SplitPlan | None = None
    chunks: list[Chunk] = field(default_factory=list)
    requests: int = 0
    bytes_sent: int = 0
    usage: Usage | None = None


class NoTimestamps(Exception):
    """The endpoint refused every timestamped response format."""


class DurationCapExceeded(Exception):
    def __init__(self, cap: float) -> None:
        super().__init__(cap)
        self.cap = cap


@dataclass
class Negotiation:
    """Which response format to ask for; learnt once from 400s and shared by all chunks."""

    formats: list[str]
    timestamps: bool

    @property
    def current(self) -> str:
        return self.formats[0]

    def refuse(self, fmt: str) -> bool:
        """Drop a refused format; False when there is nothing left to try."""
        if fmt in self.formats:
            self.formats.remove(fmt)
        if self.formats:
            return True
        if self.timestamps:
            raise NoTimestamps
        return False


class FilePipeline:
    def __init__(self, job: Job, settings: Settings, client: Client, emit: Emit) -> None:
        self.job = job
        self.settings = settings
        self.client = client
        self.emit = emit
        self.result = Result()
        self.expected_requests: int | None = 1

    # -- deciding ---------------------------------------------------------------------

    def granularities(self) -> tuple[str, ...]:
        """Subtitles need segments; split recordings also need words, so that what
        overlapping chunks both heard is dropped word by word, not segment by segment."""
        wanted = self.job.granularities
        if self.job.output_format is not OutputFormat.VERBOSE_JSON:
            wanted = ("segment",)
        if self.result.plan is not None:
            wanted = (*wanted, "segment", "word")
        return tuple(dict.fromkeys(wanted))

    def trimmed(self, transcript: Transcript) -> Transcript:
        """Keep only the granularities the user asked for in verbose_json."""
        if self.job.output_format is not OutputFormat.VERBOSE_JSON:
            return transcript
        if "word" not in self.job.granularities:
            transcript = transcript.evolve(words=())
        if "segment" not in self.job.granularities:
            transcript = transcript.evolve(segments=())
        return transcript

    def request(self, response_format: str, prompt: str | None = None) -> RequestOptions:
        job = self.job
        granularities = self.granularities() if response_format == "verbose_json" else ()
        return RequestOptions(
            task=job.task,
            model=self.settings.model,
            response_format=response_format,
            language=job.language,
            prompt=prompt if prompt is not None else job.prompt,
            temperature=job.temperature,
            granularities=granularities,
        )

    # -- running ----------------------------------------------------------------------

    async def run(self, workdir: Path) -> Result:
        check_model(self.job, self.settings)
        info = await asyncio.to_thread(media.probe, self.job.source)
        timestamped = timestamp_formats(self.settings)
        duration_cap = self.settings.caps.duration_cap
        for _ in range(3):  # a 400 may teach us a smaller duration cap, once or twice
            decision = await decide(
                self.job,
                self.settings,
                info,
                workdir,
                timestamped=timestamped,
                duration_cap=duration_cap,
            )
            try:
                await self.execute(decision, info, workdir)
                return self.result
            except NoTimestamps:
                self.notice(f"{self.settings.model} returned no timestamps; cutting at pauses")
                timestamped = ()
            except DurationCapExceeded as exc:
                self.notice(f"the endpoint caps a request at {exc.cap:g} s; splitting to fit")
                duration_cap = exc.cap
            self.result = Result()
        raise ConfigError("the endpoint kept refusing the request", file=self.job.name)

    async def execute(self, decision: Decision, info: media.MediaInfo, workdir: Path) -> None:
        negotiation = Negotiation(list(decision.formats), decision.timestamps)
        if decision.mode is Mode.ONE_REQUEST:
            assert decision.upload is not None
            if decision.upload.notice:
                self.notice(decision.upload.notice)
            await self.run_single(decision.upload, negotiation, info.duration)
            return
        if decision.mode is Mode.CHUNKS:
            plan = decision.plan
            assert plan is not None
            self.result.plan = plan
            self.notice(f"splitting: {'; '.join(plan.reasons)}")
            parts = await self.upload_chunks(
                lambda stop: chunking.cut_chunks(info, plan, workdir, stop),
                negotiation,
                plan.chunks,
            )
        else:
            self.notice(
                f"{self.settings.model} gives no timestamps: transcribing utterance by "
                "utterance and timing each from the audio"
            )
            parts = await self.upload_chunks(
                lambda stop: utterances.cut_utterances(info, workdir, stop=stop), negotiation, None,
                utterances=True,
            )  # fmt: skip
        self.finish(stitch.stitch(parts, duration=info.duration))

    async def run_single(
        self, upload: media.UploadFile, negotiation: Negotiation, duration: float
    ) -> None:
        self.emit(Event(Kind.PLAN, self.job.name, "one request", total=1))
        target = Upload(upload.path, upload.filename, upload.content_type)
        if not negotiation.timestamps:
            fmt = negotiation.current
            body, transcript = await self.send(target, fmt, 0)
            if fmt == self.job.output_format.value:
                self.result.passthrough = body
            self.finish(transcript)
            return
        transcript = await self.send_negotiated(target, negotiation, 0)
        self.finish(stitch.stitch([stitch.Part(transcript, 0.0, duration)], duration=duration))

    def finish(self, transcript: Transcript) -> None:
        self.result.transcript = self.trimmed(transcript)
        usage = transcript.usage
        self.result.usage = usage
        if usage is not None:
            self.notice(f"usage: {usage.describe()}")

    # -- uploading --------------------------------------------------------------------

    async def upload_chunks(
        self,
        produce: Callable[[threading.Event], Iterator[Chunk]],
        negotiation: Negotiation,
        total: int | None,
        *,
        utterances: bool = False,
    ) -> list[stitch.Part]:
        self.expected_requests = total
        self.emit(Event(Kind.PLAN, self.job.name, "chunks", total=total))
        ahead = asyncio.Semaphore(self.job.concurrency + 2)  # bounds chunk files on disk
        tasks: list[asyncio.Task[stitch.Part]] = []
        chunks = ChunkSource(produce)
        previous_text: list[str] = []
        try:
            while True:
                await ahead.acquire()
                chunk = await chunks.next()
                if chunk is None:
                    ahead.release()
                    break
                self.result.chunks.append(chunk)
                self.emit(Event(Kind.PREPARED, self.job.name, index=chunk.index, bytes=chunk.size))
                task = asyncio.create_task(
                    self.upload_chunk(chunk, negotiation, ahead, utterances, previous_text)
                )
                tasks.append(task)
                if self.job.carry_prompt:
                    await task  # each prompt needs the previous chunk's text
                _raise_first_failure(tasks)
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            await chunks.close()

    async def upload_chunk(
        self,
        chunk: Chunk,
        negotiation: Negotiation,
        ahead: asyncio.Semaphore,
        utterances: bool,
        previous_text: list[str],
    ) -> stitch.Part:
        try:
            upload = Upload(chunk.path, chunk.filename, _content_type(chunk.filename))
            prompt = _carry(previous_text, self.job.prompt) if self.job.carry_prompt else None
            transcript = await self.send_negotiated(upload, negotiation, chunk.index, prompt)
            if self.job.carry_prompt:
                previous_text.append(transcript.text)
            if utterances:
                speech_start = chunk.start if chunk.speech_start is None else chunk.speech_start
                speech_end = chunk.end if chunk.speech_end is None else chunk.speech_end
                transcript = stitch.single_segment(
                    transcript, speech_start - chunk.start, speech_end - chunk.start
                )
            return stitch.Part(transcript, chunk.start, chunk.end)
        except SttcliError as exc:
            exc.cause = f"chunk {chunk.index + 1} ({_clock(chunk.start)}–{_clock(chunk.end)}): " + (
                exc.cause
            )
            raise
        finally:
            chunk.path.unlink(missing_ok=True)
            ahead.release()

    async def send_negotiated(
        self,
        upload: Upload,
        negotiation: Negotiation,
        index: int,
        prompt: str | None = None,
    ) -> Transcript:
        while True:
            fmt = negotiation.current
            try:
                _body, transcript = await self.send(upload, fmt, index, prompt)
                return transcript
            except RequestRejected as exc:
                if exc.status != 400:
                    raise
                cap = _duration_cap(exc)
                if cap is not None:
                    raise DurationCapExceeded(cap) from None
                if fmt != negotiation.current:
                    continue  # another chunk already learnt this format is refused
                if not _names_response_format(exc) or not negotiation.refuse(fmt):
                    raise
                self.emit(
                    Event(Kind.DEBUG, self.job.name, f"endpoint refused {fmt}; trying another")
                )

    async def send(
        self,
        upload: Upload,
        response_format: str,
        index: int,
        prompt: str | None = None,
    ) -> tuple[str, Transcript]:
        size = upload.path.stat().st_size
        label = self.job.name
        total = max(self.expected_requests or 0, len(self.result.chunks)) or None
        self.emit(Event(Kind.UPLOADING, label, index=index, total=total, bytes=size))
        try:
            response = await self.client.send(
                upload, self.request(response_format, prompt), label=label
            )
        except SttcliError as exc:
            raise exc.with_file(self.job.name) from None
        self.result.requests += 1
        self.result.bytes_sent += size
        self.emit(Event(Kind.UPLOADED, label, index=index, total=total, bytes=size))
        try:
            transcript = parse_response(response.body, response.content_type, response_format)
        except ResponseFormatError as exc:
            raise RequestRejected(
                str(exc), file=self.job.name, hint="check that --base-url is a transcription API"
            ) from None
        body = unwrap_body(response.body, response.content_type)
        return body.decode("utf-8", errors="replace"), transcript

    def notice(self, message: str) -> None:
        self.emit(Event(Kind.NOTICE, self.job.name, message))


def _raise_first_failure(tasks: list[asyncio.Task[stitch.Part]]) -> None:
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


class ChunkSource:
    """Runs a chunk producer on its own thread, one step at a time, so that encoding the
    next chunk overlaps the uploads. Closing stops the decode at its next block and then
    closes the producer (ending its ffmpeg processes) once the step in progress is over:
    a generator cannot be closed while another thread is inside it."""

    def __init__(self, produce: Callable[[threading.Event], Iterator[Chunk]]) -> None:
        self._stop = threading.Event()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sttcli-chunks")
        self._chunks = produce(self._stop)

    async def next(self) -> Chunk | None:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, next, self._chunks, None)

    async def close(self) -> None:
        self._stop.set()
        close = getattr(self._chunks, "close", None)
        try:
            if close is not None:
                await asyncio.get_running_loop().run_in_executor(self._thread, close)
        finally:
            self._thread.shutdown(wait=False)


def _carry(previous: list[str], user_prompt: str | None) -> str | None:
    if not previous:
        return user_prompt
    tail = previous[-1][-CARRY_PROMPT_CHARS:]
    cut = tail.find(" ")
    return tail[cut + 1 :] if 0 <= cut < len(tail) - 1 and len(previous[-1]) > len(tail) else tail


def _content_type(filename: str) -> str:
    ext = filename.rsplit(".", 1)[-1].lower()
    return media.CONTENT_TYPES.get(ext, "application/octet-stream")


def _names_response_format(exc: RequestRejected) -> bool:
    return exc.param == "response_format" or "response_format" in exc.cause


def _duration_cap(exc: RequestRejected) -> float | None:
    text = exc.cause.lower()
    if not any(word in text for word in ("too long", "duration", "maximum", "longer than")):
        return None
    numbers = [float(n) for n in DURATION_CAP_PATTERN.findall(exc.cause)]
    return min(numbers) if numbers else None


def _clock(seconds: float) -> str:
    return format_timestamp(seconds, decimal_marker=".")


async def transcribe(job: Job, settings: Settings, client: Client, emit: Emit) -> Result:
    with tempfile.TemporaryDirectory(prefix="sttcli-") as workdir:
        return await FilePipeline(job, settings, client, emit).run(Path(workdir))
