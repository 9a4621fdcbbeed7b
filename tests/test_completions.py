"""completions/ is generated from the app and must match what it generates now; the
scripts call back into sttcli, so completing real options is tested too."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import CLI

ROOT = Path(__file__).resolve().parent.parent


def generate(shell: str) -> str:
    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    result = subprocess.run(
        [str(CLI), "--show-completion", shell], capture_output=True, text=True, env=env,
        check=True, timeout=60,
    )  # fmt: skip
    return result.stdout


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_committed_completion_scripts_are_current(shell: str) -> None:
    committed = (ROOT / "completions" / f"sttcli.{shell}").read_text()
    assert committed == generate(shell), "stale: run scripts/completions and commit"


def complete_bash(words: str) -> list[str]:
    parts = words.split(" ")
    env = {
        **os.environ,
        "_STTCLI_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(parts) - 1),
    }
    result = subprocess.run([str(CLI)], capture_output=True, text=True, env=env, timeout=60,
                            check=False)  # fmt: skip
    return result.stdout.split()


def test_bash_completion_offers_commands_options_and_values() -> None:
    assert {"transcribe", "translate", "config"} <= set(complete_bash("sttcli "))
    assert "--format" in complete_bash("sttcli transcribe --for")
    assert set(complete_bash("sttcli transcribe x.mp3 -f ")) >= {"srt", "vtt", "verbose_json"}
    assert {"portkey", "portkey-local"} <= set(complete_bash("sttcli transcribe x.mp3 -g port"))
