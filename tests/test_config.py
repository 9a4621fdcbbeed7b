"""Settings precedence, profiles, key handling and redaction."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sttcli import config, profiles
from sttcli.config import GatewayOptions, resolve
from sttcli.errors import ConfigError, ExitCode

KEY = "sk-config-SECRET-987654321"


def write_config(text: str) -> Path:
    path = config.config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_config_dir_follows_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STTCLI_CONFIG_DIR", str(tmp_path / "elsewhere"))
    assert config.config_path() == tmp_path / "elsewhere" / "config.toml"


def test_default_is_openai_and_needs_its_key() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(GatewayOptions(), env={})
    assert caught.value.exit_code == ExitCode.CONFIG
    assert "OPENAI_API_KEY" in caught.value.one_line()
    settings = resolve(GatewayOptions(), env={"OPENAI_API_KEY": KEY})
    assert settings.profile.name == "openai"
    assert settings.base_url == "https://api.openai.com/v1"
    assert settings.request_headers()["Authorization"] == f"Bearer {KEY}"
    assert settings.key_source == "OPENAI_API_KEY"


def test_sttcli_api_key_wins_over_profile_variable() -> None:
    env = {"OPENAI_API_KEY": "profile-key", "STTCLI_API_KEY": KEY}
    assert resolve(GatewayOptions(), env=env).request_headers()["Authorization"] == f"Bearer {KEY}"


def test_precedence_flag_over_env_over_file_over_profile() -> None:
    write_config('gateway = "groq"\nmodel = "from-file"\n')
    env = {"GROQ_API_KEY": KEY, "OPENAI_API_KEY": KEY}
    from_file = resolve(GatewayOptions(), env=env)
    assert (from_file.profile.name, from_file.model) == ("groq", "from-file")
    from_env = resolve(GatewayOptions(), env={**env, "STTCLI_MODEL": "from-env"})
    assert from_env.model == "from-env"
    assert from_env.sources["model"] == "STTCLI_MODEL"
    from_flag = resolve(GatewayOptions(gateway="openai", model="flag"), env=env)
    assert (from_flag.profile.name, from_flag.model) == ("openai", "flag")


def test_base_url_alone_means_custom_and_path_suffix_is_accepted() -> None:
    url = "http://127.0.0.1:9/v1/audio/transcriptions/"
    settings = resolve(GatewayOptions(base_url=url), env={})
    assert settings.profile.name == "custom"
    assert settings.base_url == "http://127.0.0.1:9/v1"
    assert settings.api_key is None


def test_requesty_prefixes_models_and_limits_formats() -> None:
    settings = resolve(GatewayOptions(gateway="requesty"), env={"REQUESTY_API_KEY": KEY})
    assert settings.model == "openai/whisper-1"
    assert (
        resolve(
            GatewayOptions(gateway="requesty", model="gpt-4o-transcribe"),
            env={"REQUESTY_API_KEY": KEY},
        ).model
        == "openai/gpt-4o-transcribe"
    )
    assert settings.profile.response_formats == {"json", "verbose_json"}
    assert settings.upload_cap == 32 * profiles.MB


def test_portkey_routing_headers_and_provider_key() -> None:
    env = {"PORTKEY_API_KEY": "pk-SECRET", "OPENAI_API_KEY": KEY}
    settings = resolve(
        GatewayOptions(gateway="portkey", portkey_provider="openai",
                       portkey_custom_host="http://10.0.0.1/v1"),
        env=env,
    )  # fmt: skip
    headers = settings.request_headers()
    assert headers["x-portkey-api-key"] == "pk-SECRET"
    assert headers["x-portkey-provider"] == "openai"
    assert headers["x-portkey-custom-host"] == "http://10.0.0.1/v1"
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert set(settings.secrets()) == {"pk-SECRET", f"Bearer {KEY}"}
    assert config.describe(settings)["headers"]["x-portkey-provider"] == "openai"


@pytest.mark.parametrize(
    ("name", "secret"),
    [("x-portkey-api-key", True), ("x-portkey-virtual-key", True), ("Authorization", True),
     ("x-portkey-config", True), ("x-portkey-provider", False), ("X-Team", False),
     ("x-portkey-custom-host", False), ("api-key", True), ("X-Auth-Token", True)],
)  # fmt: skip
def test_which_headers_are_secret(name: str, secret: bool) -> None:
    assert config.is_secret_header(name) is secret


def test_portkey_provider_without_provider_key_says_which_to_set() -> None:
    options = GatewayOptions(gateway="portkey", portkey_provider="anthropic")
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        resolve(options, env={"PORTKEY_API_KEY": "pk"})
    shown = resolve(options, env={}, require_key=False)  # config show, --dry-run
    assert "Authorization" not in shown.request_headers()


def test_custom_headers_are_parsed_and_secret_ones_redacted() -> None:
    settings = resolve(
        GatewayOptions(base_url="http://x/v1", headers=("X-Team: a b", "X-Api-Key: hidden")),
        env={},
    )
    shown = config.describe(settings)
    assert shown["headers"] == {"X-Team": "a b", "X-Api-Key": "<redacted>"}
    assert "hidden" not in repr(settings) and "hidden" not in str(shown)
    with pytest.raises(ConfigError, match="Name: value"):
        resolve(GatewayOptions(base_url="http://x/v1", headers=("no-colon",)), env={})


def test_describe_never_shows_the_key() -> None:
    settings = resolve(GatewayOptions(), env={"OPENAI_API_KEY": KEY})
    text = str(config.describe(settings)) + repr(settings)
    assert KEY not in text
    assert config.describe(settings)["api_key"] == "set (from OPENAI_API_KEY)"


def test_user_profile_from_toml_extends_a_builtin() -> None:
    write_config(
        """
[profiles.team]
extends = "openai"
base_url = "https://proxy.example/v1"
api_key_env = "TEAM_KEY"
upload_cap_mb = 10
response_formats = ["json", "verbose_json"]
headers = { "X-Team" = "captions" }
[profiles.team.models."house-model"]
formats = ["json", "text"]
timestamps = false
duration_cap = 600
"""
    )
    settings = resolve(GatewayOptions(gateway="team", model="house-model"), env={"TEAM_KEY": KEY})
    assert settings.base_url == "https://proxy.example/v1"
    assert settings.upload_cap == 10 * profiles.MB
    assert settings.headers["X-Team"] == "captions"
    assert settings.caps == profiles.ModelCaps(frozenset({"json", "text"}), False, 600.0, True)
    assert settings.profile.auth_header == "Authorization"


def test_bad_config_file_is_a_config_error_naming_the_file() -> None:
    path = write_config("gateway = [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        resolve(GatewayOptions(), env={"OPENAI_API_KEY": KEY})
    assert str(path) in caught.value.one_line()
    write_config("[profiles.x]\nbase_urll = 'typo'\n")
    with pytest.raises(ConfigError, match="base_urll"):
        resolve(GatewayOptions(gateway="x"), env={})


def test_unknown_gateway_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="requesty"):
        resolve(GatewayOptions(gateway="nope"), env={})


@pytest.mark.parametrize(
    ("model", "timestamps", "cap"),
    [
        ("whisper-1", True, None),
        ("gpt-4o-transcribe", False, 1400),
        ("gpt-4o-mini-transcribe-2025-03-20", False, 1400),
        ("openai/gpt-4o-mini-transcribe", False, 1400),
        ("whisper-large-v3-turbo", True, None),
        ("some-new-model", True, None),
    ],
)
def test_model_capabilities_are_data(model: str, timestamps: bool, cap: float | None) -> None:
    caps = profiles.BUILTIN_PROFILES["openai"].caps(model)
    assert (caps.timestamps, caps.duration_cap) == (timestamps, cap)


def test_secret_never_prints_itself() -> None:
    secret = config.Secret(KEY)
    assert KEY not in repr(secret) and KEY not in str(secret) and KEY not in f"{secret}"
    assert secret.reveal() == KEY


def test_environment_is_isolated_by_conftest() -> None:
    assert "OPENAI_API_KEY" not in os.environ


def test_redact_hides_secrets_and_echoed_keys_but_not_short_values() -> None:
    text = "bad key sk-abcdef123 from check; Incorrect API key provided: sk-abc***f123."
    out = config.redact(text, ["sk-abcdef123", "k"])
    assert "sk-abcdef123" not in out and "sk-abc***" not in out
    assert "check" in out, "a 1-character 'secret' must not mangle words"
    assert out.count("<redacted>") == 2
