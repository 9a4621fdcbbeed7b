"""Gateway profiles, model capabilities, and how settings are resolved.

Precedence, highest first: command-line flags > environment (`STTCLI_*`) > the user's
config file > the chosen profile's built-in defaults.

The config directory is `$STTCLI_CONFIG_DIR` when set, else the platform's user config
directory for "sttcli" (e.g. ~/.config/sttcli on Linux). The file is `config.toml`.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from sttcli.errors import ConfigError
from sttcli.profiles import (
    MB,
    ModelCaps,
    Profile,
    all_profiles,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

SECRET_HEADER_WORDS = frozenset(
    {
        "authorization",
        "auth",
        "key",
        "apikey",
        "token",
        "secret",
        "cookie",
        "signature",
        "password",
        "config",
    }
)  # fmt: skip  ("config": a Portkey config may embed provider keys)


class Secret:
    """A string that never shows itself in repr, str or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('****')"

    __str__ = __repr__


# Shorter "secrets" are not worth hiding and would mangle text ("k" is in "check").
MIN_SECRET_LENGTH = 6
# OpenAI's 401 echoes a masked key ("sk-abc***wxyz"): redact the echo too.
MASKED_KEY = re.compile(r"(API key provided:)\s*\S+", re.IGNORECASE)


def redact(text: str, secrets: list[str]) -> str:
    """`text` with every secret (and any key an endpoint echoed back) replaced."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, "<redacted>")
    return MASKED_KEY.sub(r"\1 <redacted>", text)


def config_dir() -> Path:
    override = os.environ.get("STTCLI_CONFIG_DIR")
    return Path(override) if override else Path(platformdirs.user_config_dir("sttcli"))


def config_path() -> Path:
    return config_dir() / "config.toml"


def load_config_file(path: Path | None = None) -> dict[str, Any]:
    path = path or config_path()
    if not path.exists():
        return {}
    try:
        with path.open("rb") as handle:
            loaded: dict[str, Any] = tomllib.load(handle)
            return loaded
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config: {exc}", file=path, hint="fix the TOML") from None


@dataclass(frozen=True)
class GatewayOptions:
    """What the command line said about the gateway; None means "not given"."""

    gateway: str | None = None
    base_url: str | None = None
    model: str | None = None
    headers: tuple[str, ...] = ()
    upload_cap_mb: float | None = None
    portkey_provider: str | None = None
    portkey_config: str | None = None
    portkey_virtual_key: str | None = None
    portkey_custom_host: str | None = None


@dataclass(frozen=True)
class Settings:
    """The effective gateway settings for a run."""

    profile: Profile
    base_url: str
    model: str
    api_key: Secret | None
    key_source: str | None
    headers: Mapping[str, str]
    secret_headers: Mapping[str, Secret]
    query: Mapping[str, str]
    upload_cap: int
    sources: Mapping[str, str]

    @property
    def caps(self) -> ModelCaps:
        return self.profile.caps(self.model)

    def secrets(self) -> list[str]:
        """Every secret value in play, so messages can be scrubbed of them."""
        values = [s.reveal() for s in self.secret_headers.values()]
        if self.api_key is not None:
            values.append(self.api_key.reveal())
        return [v for v in values if v]

    def request_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        headers.update({k: v.reveal() for k, v in self.secret_headers.items()})
        if self.api_key is not None:
            scheme = self.profile.auth_scheme
            value = self.api_key.reveal()
            headers[self.profile.auth_header] = f"{scheme} {value}" if scheme else value
        return headers


def normalize_base_url(url: str) -> str:
    url = url.strip().rstrip("/")
    for suffix in ("/audio/transcriptions", "/audio/translations"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    return url.rstrip("/")


def parse_header(raw: str) -> tuple[str, str]:
    name, sep, value = raw.partition(":")
    if not sep or not name.strip() or " " in name.strip():
        raise ConfigError(
            f"invalid header '{name.strip() or raw}'",
            hint="write headers as --header 'Name: value'",
        )
    return name.strip(), value.strip()


def resolve(
    options: GatewayOptions, env: Mapping[str, str] | None = None, *, require_key: bool = True
) -> Settings:
    env = os.environ if env is None else env
    source = config_path()
    file_config = load_config_file(source)
    profiles = all_profiles(file_config, source)
    sources: dict[str, str] = {}

    name = _pick(
        sources, "gateway",
        (options.gateway, "--gateway"),
        ("custom" if options.base_url else None, "--base-url"),
        (env.get("STTCLI_GATEWAY"), "STTCLI_GATEWAY"),
        (file_config.get("gateway"), f"{source}"),
        ("openai", "default"),
    )  # fmt: skip
    if name not in profiles:
        raise ConfigError(
            f"unknown gateway '{name}'",
            hint=f"choose one of: {', '.join(profiles)} (or define it in {source})",
        )
    profile = profiles[name]
    base_url = _pick(
        sources, "base_url",
        (options.base_url, "--base-url"),
        (env.get("STTCLI_BASE_URL"), "STTCLI_BASE_URL"),
        (profile.base_url or None, f"profile {name}"),
    )  # fmt: skip
    if not base_url:
        raise ConfigError(
            f"gateway '{name}' needs a base URL",
            hint="pass --base-url URL or set STTCLI_BASE_URL",
        )
    model = _pick(
        sources, "model",
        (options.model, "--model"),
        (env.get("STTCLI_MODEL"), "STTCLI_MODEL"),
        (file_config.get("model"), str(source)),
        (profile.model, f"profile {name}"),
    )  # fmt: skip
    if profile.model_prefix and "/" not in model:
        model = profile.model_prefix + model
    api_key, key_source = _resolve_key(profile, env, require_key)
    headers, secret_headers = _resolve_headers(options, profile, env, require_key)
    cap_mb = options.upload_cap_mb or _float_env(env, "STTCLI_UPLOAD_CAP_MB")
    return Settings(
        profile=profile,
        base_url=normalize_base_url(base_url),
        model=model,
        api_key=api_key,
        key_source=key_source,
        headers=headers,
        secret_headers=secret_headers,
        query=dict(profile.query),
        upload_cap=int(cap_mb * MB) if cap_mb else profile.upload_cap,
        sources=sources,
    )


def _pick(sources: dict[str, str], key: str, *candidates: tuple[Any, str]) -> str:
    for value, origin in candidates:
        if value:
            sources[key] = origin
            return str(value)
    return ""


def _float_env(env: Mapping[str, str], name: str) -> float | None:
    raw = env.get(name)
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number", hint=f"unset {name}") from None


def _resolve_key(
    profile: Profile, env: Mapping[str, str], required: bool
) -> tuple[Secret | None, str | None]:
    for var in ("STTCLI_API_KEY", *profile.key_envs):
        value = env.get(var, "").strip()
        if value:
            return Secret(value), var
    if profile.key_required and required:
        names = " or ".join((*profile.key_envs, "STTCLI_API_KEY"))
        raise ConfigError(
            f"no API key for gateway '{profile.name}'",
            hint=f"set {names}",
        )
    return None, None


def _resolve_headers(
    options: GatewayOptions, profile: Profile, env: Mapping[str, str], require_key: bool
) -> tuple[dict[str, str], dict[str, Secret]]:
    pairs = list(profile.headers.items())
    routing = {
        "x-portkey-provider": options.portkey_provider,
        "x-portkey-config": options.portkey_config,
        "x-portkey-virtual-key": options.portkey_virtual_key,
        "x-portkey-custom-host": options.portkey_custom_host,
    }
    pairs += [(k, v) for k, v in routing.items() if v]
    pairs += [parse_header(raw) for raw in options.headers]
    if options.portkey_provider and not any(k.lower() == "authorization" for k, _ in pairs):
        provider_key = _provider_key(options.portkey_provider, env, require_key)
        if provider_key:
            pairs.append(("Authorization", f"Bearer {provider_key}"))
    plain: dict[str, str] = {}
    secret: dict[str, Secret] = {}
    for key, value in pairs:
        if is_secret_header(key):
            secret[key] = Secret(value)
        else:
            plain[key] = value
    return plain, secret


def is_secret_header(name: str) -> bool:
    return any(word in SECRET_HEADER_WORDS for word in re.split(r"[-_ ]", name.lower()))


def _provider_key(provider: str, env: Mapping[str, str], required: bool) -> str | None:
    var = f"{provider.upper().replace('-', '_')}_API_KEY"
    value = env.get("STTCLI_PROVIDER_API_KEY") or env.get(var)
    if not value and required:
        raise ConfigError(
            f"--portkey-provider {provider} needs the provider's key",
            hint=f"set {var} or STTCLI_PROVIDER_API_KEY (or use --portkey-virtual-key)",
        )
    return value


def describe(settings: Settings) -> dict[str, Any]:
    """The effective settings for `config show`, with every secret redacted."""
    headers = dict(settings.headers)
    headers.update({k: "<redacted>" for k in settings.secret_headers})
    return {
        "config_file": str(config_path()),
        "gateway": settings.profile.name,
        "base_url": settings.base_url,
        "model": settings.model,
        "api_key": f"set (from {settings.key_source})" if settings.api_key else "not set",
        "auth_header": settings.profile.auth_header,
        "headers": headers,
        "query": dict(settings.query),
        "upload_cap_mb": settings.upload_cap / MB,
        "response_formats": sorted(settings.profile.response_formats),
        "model_formats": sorted(settings.caps.formats),
        "model_timestamps": settings.caps.timestamps,
        "model_duration_cap_s": settings.caps.duration_cap,
        "sources": dict(settings.sources),
    }
