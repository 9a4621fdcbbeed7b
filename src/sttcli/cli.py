"""The command line: options, help text, and the one place errors become exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from sttcli import __version__, config, pipeline, plan
from sttcli.chunking import Chunk
from sttcli.client import Client, RetryPolicy
from sttcli.errors import ExitCode, SttcliError, UsageError
from sttcli.languages import validate_language
from sttcli.options import (
    BaseUrlOpt,
    CarryPromptOpt,
    ChunkCodec,
    ChunkCodecOpt,
    ChunkSecondsOpt,
    ConcurrencyOpt,
    ConvertOpt,
    DebugOpt,
    DryRunOpt,
    FileArg,
    FormatOpt,
    GatewayOpt,
    HeaderOpt,
    LanguageOpt,
    ModelOpt,
    OutputOpt,
    OverlapOpt,
    PortkeyConfigOpt,
    PortkeyCustomHostOpt,
    PortkeyProviderOpt,
    PortkeyVirtualKeyOpt,
    PromptOpt,
    QuietOpt,
    RetriesOpt,
    TemperatureOpt,
    TimeoutOpt,
    TimestampsOpt,
    UploadCapOpt,
)
from sttcli.output import write_output
from sttcli.progress import Reporter
from sttcli.writers import OutputFormat, format_timestamp, render

app = typer.Typer(
    name="sttcli",
    help="Transcribe recordings of any length through an OpenAI-compatible speech-to-text "
    "endpoint (OpenAI, Portkey, Requesty, Groq, Azure, or your own).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="rich",
)
config_app = typer.Typer(help="Where settings live and what they resolve to.", no_args_is_help=True)
app.add_typer(config_app, name="config")


def fail(error: SttcliError, *, secrets: list[str] | None = None) -> NoReturn:
    """The single boundary where an error becomes one line on stderr and an exit code."""
    line = config.redact(error.one_line(), secrets or [])
    print(f"sttcli: error: {line}", file=sys.stderr, flush=True)
    raise typer.Exit(int(error.exit_code))


@contextlib.contextmanager
def error_boundary(debug: bool, secrets: Callable[[], list[str]]) -> Iterator[None]:
    try:
        yield
    except SttcliError as exc:
        if debug:
            _print_traceback(secrets())
        fail(exc, secrets=secrets())
    except KeyboardInterrupt:
        print("sttcli: interrupted", file=sys.stderr, flush=True)
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        if debug:
            _print_traceback(secrets())
        message = config.redact(f"{type(exc).__name__}: {exc}", secrets())
        hint = "" if debug else " (run with --debug for details)"
        print(f"sttcli: error: internal error: {message}{hint}", file=sys.stderr, flush=True)
        raise typer.Exit(int(ExitCode.INTERNAL)) from None


def _print_traceback(secrets: list[str]) -> None:
    print(config.redact(traceback.format_exc(), secrets), file=sys.stderr, end="", flush=True)


@contextlib.contextmanager
def input_path(file: str) -> Iterator[tuple[Path, str]]:
    """The recording as a path on disk; stdin is spooled to a temporary file first."""
    if file != "-":
        yield Path(file), file
        return
    if sys.stdin.isatty():
        raise UsageError("FILE is - but stdin is a terminal", hint="pipe a recording in")
    with tempfile.TemporaryDirectory(prefix="sttcli-stdin-") as tmp:
        path = Path(tmp) / "stdin"
        with path.open("wb") as handle:
            shutil.copyfileobj(sys.stdin.buffer, handle, 1 << 20)
        yield path, "<stdin>"


def parse_granularities(raw: str) -> tuple[str, ...]:
    values = tuple(dict.fromkeys(v.strip().lower() for v in raw.split(",") if v.strip()))
    unknown = [v for v in values if v not in ("word", "segment")]
    if unknown or not values:
        raise UsageError(
            f"--timestamps {raw!r} is not valid", hint="use word, segment or word,segment"
        )
    return values


def _version(value: bool) -> None:
    if value:
        print(f"sttcli {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """sttcli: speech to text for files of any length."""


def _make_command(task: str) -> Callable[..., None]:
    def command(
        file: FileArg,
        format: FormatOpt = OutputFormat.TEXT,
        output: OutputOpt = None,
        timestamps: TimestampsOpt = "segment",
        model: ModelOpt = None,
        language: LanguageOpt = None,
        prompt: PromptOpt = None,
        temperature: TemperatureOpt = None,
        gateway: GatewayOpt = None,
        base_url: BaseUrlOpt = None,
        header: HeaderOpt = None,
        portkey_provider: PortkeyProviderOpt = None,
        portkey_config: PortkeyConfigOpt = None,
        portkey_virtual_key: PortkeyVirtualKeyOpt = None,
        portkey_custom_host: PortkeyCustomHostOpt = None,
        upload_cap_mb: UploadCapOpt = None,
        chunk_seconds: ChunkSecondsOpt = None,
        chunk_codec: ChunkCodecOpt = ChunkCodec.FLAC,
        overlap: OverlapOpt = 2.0,
        concurrency: ConcurrencyOpt = 4,
        carry_prompt: CarryPromptOpt = False,
        convert: ConvertOpt = True,
        dry_run: DryRunOpt = False,
        timeout: TimeoutOpt = 600.0,
        retries: RetriesOpt = 4,
        quiet: QuietOpt = False,
        debug: DebugOpt = False,
    ) -> None:
        settings_box: list[config.Settings] = []

        def secrets() -> list[str]:
            return settings_box[0].secrets() if settings_box else []

        with error_boundary(debug, secrets):
            gateway_options = config.GatewayOptions(
                gateway=gateway,
                base_url=base_url,
                model=model,
                headers=tuple(header or ()),
                upload_cap_mb=upload_cap_mb,
                portkey_provider=portkey_provider,
                portkey_config=portkey_config,
                portkey_virtual_key=portkey_virtual_key,
                portkey_custom_host=portkey_custom_host,
            )
            settings = config.resolve(gateway_options, require_key=not dry_run)
            settings_box.append(settings)
            with input_path(file) as (path, name):
                job = plan.Job(
                    source=path,
                    name=name,
                    task=task,
                    output_format=format,
                    language=validate_language(language),
                    prompt=prompt,
                    temperature=temperature,
                    granularities=parse_granularities(timestamps),
                    chunk_seconds=chunk_seconds,
                    chunk_codec=chunk_codec.value,
                    overlap=overlap,
                    convert=convert,
                    carry_prompt=carry_prompt,
                    concurrency=concurrency,
                )
                if dry_run:
                    report = asyncio.run(plan.dry_run(job, settings))
                    print(describe_plan(report, format), end="")
                    return
                started = time.monotonic()
                reporter = Reporter(sys.stderr, tty=sys.stderr.isatty(), quiet=quiet, debug=debug)
                retry = RetryPolicy(retries=retries, base_delay=_backoff_base())
                result = asyncio.run(
                    _transcribe(job, settings, reporter, concurrency, timeout, retry)
                )
                text = _rendered(result, format)
                written = write_output(text, output, source_name=name, extension=format.value)
                if written is not None and not quiet:
                    reporter.line(summary(written, result, format, time.monotonic() - started))

    command.__doc__ = (
        "Transcribe a recording (any length) into text, json, verbose_json, srt or vtt."
        if task == "transcribe"
        else "Translate a recording's speech into English text, json or subtitles."
    )
    return command


async def _transcribe(
    job: plan.Job,
    settings: config.Settings,
    reporter: Reporter,
    concurrency: int,
    timeout: float,
    retry: RetryPolicy,
) -> pipeline.Result:
    with reporter:
        async with Client(
            settings, concurrency=concurrency, timeout=timeout, retry=retry, emit=reporter
        ) as client:
            return await pipeline.transcribe(job, settings, client, reporter)


def _backoff_base() -> float:
    raw = os.environ.get("STTCLI_BACKOFF_BASE", "")
    try:
        return float(raw) if raw else 0.5
    except ValueError:
        return 0.5


def summary(path: Path, result: pipeline.Result, fmt: OutputFormat, seconds: float) -> str:
    """One line after a file was written: what it holds and what it took."""
    transcript = result.transcript
    segments = len(transcript.segments) if transcript else 0
    if fmt in (OutputFormat.SRT, OutputFormat.VTT):
        what = plural(segments, "cue")
    elif fmt is OutputFormat.VERBOSE_JSON:
        what = plural(segments, "segment")
    else:
        what = f"{len(transcript.text) if transcript else 0:,} characters"
    sent = f"{result.bytes_sent / 1e6:.1f} MB uploaded"
    return f"wrote {path}: {what}, {plural(result.requests, 'request')}, {sent} in {seconds:.1f} s"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _rendered(result: pipeline.Result, fmt: OutputFormat) -> str:
    if result.passthrough is not None:
        body = result.passthrough
        return body if body.endswith("\n") else body + "\n"
    assert result.transcript is not None
    return render(result.transcript, fmt)


def describe_plan(report: plan.PlanReport, fmt: OutputFormat) -> str:
    info, decision = report.info, report.decision
    lines = [
        f"input: {info.path.name}: {info.container}/{info.codec}, {info.duration:.3f} s, "
        f"{info.size:,} bytes, {info.sample_rate} Hz, {info.channels} ch",
        f"output: {fmt.value}; asking the endpoint for {decision.formats[0]}",
    ]
    if decision.upload is not None:
        upload = decision.upload
        lines.append(f"plan: one request, {upload.filename} ({report.upload_bytes:,} bytes)")
        if upload.notice:
            lines.append(f"note: {upload.notice}")
        return "\n".join(lines) + "\n"
    reasons = decision.plan.reasons if decision.plan else ("the model gives no timestamps",)
    total = sum(c.size for c in report.chunks)
    lines.append(
        f"plan: {len(report.chunks)} {decision.mode.value}, {total:,} bytes in all"
        f" — {'; '.join(reasons)}"
    )
    for chunk in report.chunks:
        cut = "silence" if chunk.cut_in_silence else f"quietest point, {overlap_note(chunk)}"
        lines.append(
            f"  {chunk.index + 1:>4}  {format_timestamp(chunk.start, decimal_marker='.')} – "
            f"{format_timestamp(chunk.end, decimal_marker='.')}  {chunk.size:>12,} bytes  "
            f"{chunk.filename}  cut: {cut}"
        )
    return "\n".join(lines) + "\n"


def overlap_note(chunk: Chunk) -> str:
    return f"overlap {chunk.overlap_before:g} s" if chunk.overlap_before else "no overlap"


@config_app.command("path")
def config_path_command() -> None:
    """Print where the config file is (it may not exist yet)."""
    print(config.config_path())


@config_app.command("show")
def config_show(
    gateway: GatewayOpt = None,
    base_url: BaseUrlOpt = None,
    model: ModelOpt = None,
    header: HeaderOpt = None,
    portkey_provider: PortkeyProviderOpt = None,
    portkey_config: PortkeyConfigOpt = None,
    portkey_virtual_key: PortkeyVirtualKeyOpt = None,
    portkey_custom_host: PortkeyCustomHostOpt = None,
    upload_cap_mb: UploadCapOpt = None,
) -> None:
    """Print the effective settings as JSON, with every secret redacted."""
    with error_boundary(False, list):
        options = config.GatewayOptions(
            gateway=gateway,
            base_url=base_url,
            model=model,
            headers=tuple(header or ()),
            upload_cap_mb=upload_cap_mb,
            portkey_provider=portkey_provider,
            portkey_config=portkey_config,
            portkey_virtual_key=portkey_virtual_key,
            portkey_custom_host=portkey_custom_host,
        )
        settings = config.resolve(options, require_key=False)
        shown: dict[str, Any] = config.describe(settings)
        print(json.dumps(shown, indent=2))


app.command("transcribe")(_make_command("transcribe"))
app.command("translate")(_make_command("translate"))


def main() -> None:
    app()
