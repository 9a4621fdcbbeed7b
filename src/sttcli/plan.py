"""Deciding how a recording is sent: in one request, in chunks, or utterance by
utterance, and which response format to ask for. Used by the pipeline and by --dry-run,
so what a dry run shows is what a run does.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

from sttcli import chunking, media, utterances
from sttcli.chunking import Chunk, SplitPlan
from sttcli.config import Settings
from sttcli.errors import ConfigError
from sttcli.writers import OutputFormat

TIMESTAMP_FORMATS = ("verbose_json", "srt", "vtt")  # in the order they are asked for
UPLOAD_SAFETY = 0.96  # keep uploads this far under the cap: multipart overhead, MB vs MiB


@dataclass(frozen=True)
class Job:
    source: Path
    name: str  # how the user named the input, for messages
    task: str = "transcribe"
    output_format: OutputFormat = OutputFormat.TEXT
    language: str | None = None
    prompt: str | None = None
    temperature: float | None = None
    granularities: tuple[str, ...] = ("segment",)
    chunk_seconds: float | None = None
    chunk_codec: str = "flac"
    overlap: float = 2.0
    convert: bool = True
    carry_prompt: bool = False
    concurrency: int = 4


class Mode(str, Enum):
    ONE_REQUEST = "one request"
    CHUNKS = "chunks"
    UTTERANCES = "utterances"


@dataclass(frozen=True)
class Decision:
    mode: Mode
    formats: tuple[str, ...]  # response formats to try, in order (later ones on a 400)
    plan: SplitPlan | None = None  # for CHUNKS
    upload: media.UploadFile | None = None  # for ONE_REQUEST

    @property
    def timestamps(self) -> bool:
        return self.formats[0] in TIMESTAMP_FORMATS


def timestamp_formats(settings: Settings) -> tuple[str, ...]:
    caps = settings.caps
    if not caps.timestamps:
        return ()
    allowed = caps.formats & settings.profile.response_formats
    return tuple(f for f in TIMESTAMP_FORMATS if f in allowed)


def text_format(settings: Settings, wanted: str) -> str:
    allowed = settings.caps.formats & settings.profile.response_formats
    return wanted if wanted in allowed else "json"


def check_model(job: Job, settings: Settings) -> None:
    if job.task == "translate" and not settings.caps.translation:
        raise ConfigError(
            f"model {settings.model} cannot translate",
            hint="use a Whisper model for translate, e.g. --model whisper-1",
        )


def safe_cap(settings: Settings) -> int:
    return int(settings.upload_cap * UPLOAD_SAFETY)


def split_plan(
    job: Job,
    settings: Settings,
    info: media.MediaInfo,
    duration_cap: float | None,
    *,
    timestamps: bool,
) -> SplitPlan | None:
    """Overlapping chunks only help when the answers carry times to dedupe by."""
    return chunking.plan_split(
        info,
        max_upload_bytes=safe_cap(settings),
        duration_cap=duration_cap,
        chunk_seconds=job.chunk_seconds,
        codec=job.chunk_codec,
        overlap=job.overlap if timestamps else 0.0,
        model=settings.model,
    )


async def decide(
    job: Job,
    settings: Settings,
    info: media.MediaInfo,
    workdir: Path,
    *,
    timestamped: tuple[str, ...],
    duration_cap: float | None,
) -> Decision:
    """`timestamped`: the timestamped formats still believed to work. Timestamps are
    asked for whenever they exist and either the output needs them or the recording is
    split (overlapping chunks are deduplicated by time)."""
    wants_times = job.output_format.needs_timestamps
    if wants_times and not timestamped:
        return Decision(Mode.UTTERANCES, (text_format(settings, "json"),))
    plan = split_plan(job, settings, info, duration_cap, timestamps=bool(timestamped))
    if plan is None:
        upload = await asyncio.to_thread(media.prepare_upload, info, workdir, convert=job.convert)
        size = upload.path.stat().st_size
        if size <= safe_cap(settings):
            asked = (text_format(settings, job.output_format.value),)
            return Decision(Mode.ONE_REQUEST, timestamped if wants_times else asked, upload=upload)
        converted = replace(info, size=size)
        plan = split_plan(job, settings, converted, duration_cap, timestamps=bool(timestamped))
        assert plan is not None, "a file over the upload cap is always split"
    formats = timestamped or (text_format(settings, "json"),)
    return Decision(Mode.CHUNKS, formats, plan=plan)


@dataclass(frozen=True)
class PlanReport:
    """What a run would do, for --dry-run: nothing is uploaded."""

    info: media.MediaInfo
    decision: Decision
    chunks: tuple[Chunk, ...] = ()
    upload_bytes: int = 0  # of the one request's file (the original, or its conversion)


async def dry_run(job: Job, settings: Settings) -> PlanReport:
    check_model(job, settings)
    with tempfile.TemporaryDirectory(prefix="sttcli-plan-") as tmp:
        workdir = Path(tmp)
        info = await asyncio.to_thread(media.probe, job.source)
        decision = await decide(
            job,
            settings,
            info,
            workdir,
            timestamped=timestamp_formats(settings),
            duration_cap=settings.caps.duration_cap,
        )
        if decision.mode is Mode.UTTERANCES:
            pieces = utterances.cut_utterances(info, workdir)
        elif decision.mode is Mode.CHUNKS:
            assert decision.plan is not None
            pieces = chunking.cut_chunks(info, decision.plan, workdir)
        else:
            assert decision.upload is not None
            return PlanReport(info, decision, upload_bytes=decision.upload.path.stat().st_size)
        return PlanReport(info, decision, await asyncio.to_thread(_collect, pieces))


def _collect(chunks: Iterator[Chunk]) -> tuple[Chunk, ...]:
    """Run a chunk producer to the end, keeping the descriptions and not the files."""
    collected = []
    for chunk in chunks:
        collected.append(chunk)
        chunk.path.unlink(missing_ok=True)
    return tuple(collected)
