"""The command line's options: one declaration each, shared by the commands that take
them, grouped into help panels."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from sttcli import config, profiles
from sttcli.errors import SttcliError
from sttcli.writers import OutputFormat

OUTPUT = "Output"
MODEL = "Model and request"
GATEWAY = "Gateway"
SPLITTING = "Long recordings"
DIAGNOSTICS = "Network and diagnostics"


def complete_gateways() -> list[str]:
    try:
        return list(profiles.all_profiles(config.load_config_file(), config.config_path()))
    except SttcliError:
        return list(profiles.BUILTIN_PROFILES)


FileArg = Annotated[
    str,
    typer.Argument(
        metavar="FILE", help="Audio or video file to transcribe, or - to read it from stdin."
    ),
]
FormatOpt = Annotated[
    OutputFormat,
    typer.Option(
        "--format", "-f", help="Transcript format.", rich_help_panel=OUTPUT, case_sensitive=False
    ),
]
OutputOpt = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        metavar="PATH",
        help="Write here instead of stdout (- is stdout; a directory gets FILE's name).",
        rich_help_panel=OUTPUT,
    ),
]
TimestampsOpt = Annotated[
    str,
    typer.Option(
        "--timestamps",
        metavar="word,segment",
        help="verbose_json granularities: segment, word, or both.",
        rich_help_panel=OUTPUT,
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        metavar="NAME",
        help="Model name (default: the gateway's). [env: STTCLI_MODEL]",
        rich_help_panel=MODEL,
    ),
]
LanguageOpt = Annotated[
    str | None,
    typer.Option(
        "--language",
        "-l",
        metavar="CODE",
        help="Spoken language, ISO-639-1 (en, fr, ...); transcribe only.",
        rich_help_panel=MODEL,
    ),
]
PromptOpt = Annotated[
    str | None,
    typer.Option(metavar="TEXT", help="Text to guide spelling and style.", rich_help_panel=MODEL),
]
TemperatureOpt = Annotated[
    float | None,
    typer.Option(
        min=0.0, max=1.0, metavar="T", help="Sampling temperature, 0 to 1.", rich_help_panel=MODEL
    ),
]
GatewayOpt = Annotated[
    str | None,
    typer.Option(
        "--gateway",
        "-g",
        metavar="NAME",
        autocompletion=lambda: complete_gateways(),
        help="Profile: openai, portkey, portkey-local, requesty, groq, azure, local, custom, "
        "or one from your config file. [env: STTCLI_GATEWAY]",
        rich_help_panel=GATEWAY,
    ),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        metavar="URL",
        help="Endpoint base URL, e.g. https://api.openai.com/v1 (alone means --gateway custom)."
        " [env: STTCLI_BASE_URL]",
        rich_help_panel=GATEWAY,
    ),
]
HeaderOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--header",
        "-H",
        metavar="'NAME: VALUE'",
        help="Extra request header; repeatable.",
        rich_help_panel=GATEWAY,
    ),
]
PortkeyProviderOpt = Annotated[
    str | None,
    typer.Option(
        metavar="NAME",
        help="Portkey: x-portkey-provider (the provider key comes from e.g. OPENAI_API_KEY).",
        rich_help_panel=GATEWAY,
    ),
]
PortkeyConfigOpt = Annotated[
    str | None,
    typer.Option(
        metavar="ID|JSON",
        help="Portkey: x-portkey-config (config id or JSON).",
        rich_help_panel=GATEWAY,
    ),
]
PortkeyVirtualKeyOpt = Annotated[
    str | None,
    typer.Option(metavar="KEY", help="Portkey: x-portkey-virtual-key.", rich_help_panel=GATEWAY),
]
PortkeyCustomHostOpt = Annotated[
    str | None,
    typer.Option(
        metavar="URL",
        help="Portkey: x-portkey-custom-host (include the upstream's /v1).",
        rich_help_panel=GATEWAY,
    ),
]
UploadCapOpt = Annotated[
    float | None,
    typer.Option(
        "--upload-cap-mb",
        min=1.0,
        metavar="MB",
        help="Largest upload the endpoint takes, in MB (default: the gateway's). "
        "[env: STTCLI_UPLOAD_CAP_MB]",
        rich_help_panel=GATEWAY,
    ),
]
ChunkSecondsOpt = Annotated[
    float | None,
    typer.Option(
        min=5.0,
        metavar="S",
        help="Split into chunks of about this many seconds (more parallelism).",
        rich_help_panel=SPLITTING,
    ),
]


class ChunkCodec(str, Enum):
    FLAC = "flac"
    MP3 = "mp3"


ChunkCodecOpt = Annotated[
    ChunkCodec,
    typer.Option(
        case_sensitive=False,
        help="Chunk encoding: flac is lossless at 16 kHz (the models' rate); mp3 (32 kb/s) "
        "sends ~4x fewer bytes, for slow uplinks.",
        rich_help_panel=SPLITTING,
    ),
]
OverlapOpt = Annotated[
    float,
    typer.Option(
        min=0.0,
        max=30.0,
        metavar="S",
        help="Seconds neighbouring chunks share where no silence allows a clean cut.",
        rich_help_panel=SPLITTING,
    ),
]
ConcurrencyOpt = Annotated[
    int,
    typer.Option(
        "--concurrency",
        "-j",
        min=1,
        max=64,
        metavar="N",
        envvar="STTCLI_CONCURRENCY",
        help="Requests in flight at once.",
        rich_help_panel=SPLITTING,
    ),
]
CarryPromptOpt = Annotated[
    bool,
    typer.Option(
        "--carry-prompt",
        help="Send the end of each chunk's text as the next chunk's prompt (sequential).",
        rich_help_panel=SPLITTING,
    ),
]
ConvertOpt = Annotated[
    bool,
    typer.Option(
        "--convert/--no-convert",
        help="Convert containers the endpoint does not accept (aiff, mkv, mov, ...).",
        rich_help_panel=SPLITTING,
    ),
]
DryRunOpt = Annotated[
    bool,
    typer.Option("--dry-run", help="Show the plan (requests, chunks, bytes) and upload nothing.",
                 rich_help_panel=SPLITTING),
]  # fmt: skip
TimeoutOpt = Annotated[
    float,
    typer.Option(
        min=1.0, metavar="S", help="Seconds to wait for each answer.", rich_help_panel=DIAGNOSTICS
    ),
]
RetriesOpt = Annotated[
    int,
    typer.Option(
        min=0,
        max=20,
        metavar="N",
        help="Retries for 429, 5xx and network errors.",
        rich_help_panel=DIAGNOSTICS,
    ),
]
QuietOpt = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="Only errors on stderr.", rich_help_panel=DIAGNOSTICS),
]
DebugOpt = Annotated[
    bool,
    typer.Option(
        "--debug",
        help="Log requests (secrets redacted) and show tracebacks.",
        rich_help_panel=DIAGNOSTICS,
    ),
]
