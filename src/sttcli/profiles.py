"""Gateway profiles and model capabilities: data, not code.

Built-in profiles (openai, portkey, portkey-local, requesty, groq, azure, local, custom)
and the user's own from the config file's [profiles.NAME] tables, which may extend a
built-in one. What each model supports (formats, timestamps, duration cap, translation)
is looked up by name here, never hard-coded where requests are made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sttcli.errors import ConfigError

MB = 1_000_000
ALL_FORMATS = frozenset({"json", "text", "srt", "vtt", "verbose_json"})


@dataclass(frozen=True)
class ModelCaps:
    formats: frozenset[str]
    timestamps: bool
    duration_cap: float | None = None
    translation: bool = True


WHISPER = ModelCaps(ALL_FORMATS, timestamps=True)
GPT4O = ModelCaps(
    frozenset({"json", "text"}), timestamps=False, duration_cap=1400, translation=False
)
GROQ_WHISPER = ModelCaps(frozenset({"json", "text", "verbose_json"}), timestamps=True)

# Matched by the longest prefix of the model name, after any `provider/` prefix.
BUILTIN_MODELS: dict[str, ModelCaps] = {
    "whisper-1": WHISPER,
    "whisper-large-v3-turbo": replace(GROQ_WHISPER, translation=False),
    "whisper-large-v3": GROQ_WHISPER,
    "distil-whisper": replace(GROQ_WHISPER, translation=False),
    "gpt-4o-transcribe-diarize": GPT4O,
    "gpt-4o-transcribe": GPT4O,
    "gpt-4o-mini-transcribe": GPT4O,
    "gpt-transcribe": GPT4O,
}
# What an unknown model is assumed to do; a 400 naming response_format corrects it.
UNKNOWN_MODEL = WHISPER


@dataclass(frozen=True)
class Profile:
    name: str
    base_url: str
    model: str
    key_envs: tuple[str, ...]
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer"
    key_required: bool = True
    upload_cap: int = 25 * MB
    model_prefix: str = ""
    response_formats: frozenset[str] = ALL_FORMATS
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    models: Mapping[str, ModelCaps] = field(default_factory=dict)
    description: str = ""

    def caps(self, model: str) -> ModelCaps:
        bare = model.split("/")[-1]
        table = {**BUILTIN_MODELS, **self.models}
        for name in sorted(table, key=len, reverse=True):
            if model == name or bare == name or bare.startswith(name):
                return table[name]
        return UNKNOWN_MODEL


BUILTIN_PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "openai", "https://api.openai.com/v1", "whisper-1", ("OPENAI_API_KEY",),
            description="OpenAI itself",
        ),
        Profile(
            "portkey", "https://api.portkey.ai/v1", "whisper-1", ("PORTKEY_API_KEY",),
            auth_header="x-portkey-api-key", auth_scheme="",
            description="Portkey cloud (route with --portkey-provider/-config/-virtual-key)",
        ),
        Profile(
            "portkey-local", "http://localhost:8787/v1", "whisper-1", ("PORTKEY_API_KEY",),
            auth_header="x-portkey-api-key", auth_scheme="", key_required=False,
            description="self-hosted open-source Portkey gateway",
        ),
        Profile(
            "requesty", "https://router.requesty.ai/v1", "openai/whisper-1",
            ("REQUESTY_API_KEY",), upload_cap=32 * MB, model_prefix="openai/",
            response_formats=frozenset({"json", "verbose_json"}),
            description="Requesty router (json/verbose_json only; subtitles rendered locally)",
        ),
        Profile(
            "groq", "https://api.groq.com/openai/v1", "whisper-large-v3-turbo",
            ("GROQ_API_KEY",), response_formats=frozenset({"json", "text", "verbose_json"}),
            description="Groq",
        ),
        Profile(
            "azure", "", "whisper", ("AZURE_OPENAI_API_KEY",), auth_header="api-key",
            auth_scheme="", query={"api-version": "2024-10-21"},
            description="Azure OpenAI (--base-url https://RESOURCE.openai.azure.com/openai/"
            "deployments/DEPLOYMENT)",
        ),
        Profile(
            "local", "http://localhost:8000/v1", "whisper-1", (), key_required=False,
            description="a local OpenAI-compatible server (no key)",
        ),
        Profile(
            "custom", "", "whisper-1", (), key_required=False,
            description="any OpenAI-compatible endpoint given with --base-url",
        ),
    )
}  # fmt: skip

PROFILE_KEYS = {
    "extends", "base_url", "model", "api_key_env", "auth_header", "auth_scheme",
    "key_required", "upload_cap_mb", "model_prefix", "response_formats", "headers",
    "query", "models", "description",
}  # fmt: skip


def profile_from_table(name: str, table: Mapping[str, Any], source: Path) -> Profile:
    unknown = set(table) - PROFILE_KEYS
    if unknown:
        raise ConfigError(
            f"profile '{name}' has unknown keys: {', '.join(sorted(unknown))}",
            file=source,
            hint=f"known keys: {', '.join(sorted(PROFILE_KEYS))}",
        )
    base = BUILTIN_PROFILES.get(str(table.get("extends", "custom")))
    if base is None:
        raise ConfigError(
            f"profile '{name}' extends unknown gateway '{table['extends']}'",
            file=source,
            hint=f"built-in gateways: {', '.join(BUILTIN_PROFILES)}",
        )
    changes: dict[str, Any] = {"name": name}
    for key in ("base_url", "model", "auth_header", "auth_scheme", "model_prefix"):
        if key in table:
            changes[key] = str(table[key])
    if "description" in table:
        changes["description"] = str(table["description"])
    if "key_required" in table:
        changes["key_required"] = bool(table["key_required"])
    if "api_key_env" in table:
        envs = table["api_key_env"]
        changes["key_envs"] = tuple([envs] if isinstance(envs, str) else envs)
    if "upload_cap_mb" in table:
        changes["upload_cap"] = int(float(table["upload_cap_mb"]) * MB)
    if "response_formats" in table:
        changes["response_formats"] = _formats(table["response_formats"], name, source)
    for key in ("headers", "query"):
        if key in table:
            changes[key] = {str(k): str(v) for k, v in dict(table[key]).items()}
    if "models" in table:
        changes["models"] = {
            model: _model_caps(spec, source) for model, spec in dict(table["models"]).items()
        }
    return replace(base, **changes)


def _formats(values: Any, name: str, source: Path) -> frozenset[str]:
    formats = frozenset(str(v) for v in values)
    if not formats <= ALL_FORMATS:
        raise ConfigError(
            f"profile '{name}' lists unknown response formats {sorted(formats - ALL_FORMATS)}",
            file=source,
            hint=f"use some of {sorted(ALL_FORMATS)}",
        )
    return formats


def _model_caps(spec: Mapping[str, Any], source: Path) -> ModelCaps:
    cap = spec.get("duration_cap")
    return ModelCaps(
        formats=_formats(spec.get("formats", sorted(ALL_FORMATS)), "models", source),
        timestamps=bool(spec.get("timestamps", True)),
        duration_cap=float(cap) if cap is not None else None,
        translation=bool(spec.get("translation", True)),
    )


def all_profiles(file_config: Mapping[str, Any], source: Path) -> dict[str, Profile]:
    profiles = dict(BUILTIN_PROFILES)
    for name, table in dict(file_config.get("profiles", {})).items():
        profiles[name] = profile_from_table(name, table, source)
    return profiles
