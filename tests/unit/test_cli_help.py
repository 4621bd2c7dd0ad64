"""Every `onnxops` subcommand's --help ends with examples whose options the command really has, and the
README's local training command (`onnxops train --spec-file`) trains."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from onnxops import cli

ROOT = Path(__file__).resolve().parents[2]


def _help(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert cli.main([*args, "--help"]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_help_has_examples_using_real_options(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert name in cli.EXAMPLES, f"no examples for {name}"
    out = _help(capsys, name)
    help_text, _, examples = out.partition("\nexamples:\n")
    assert examples, out[-500:]
    lines = [ln.strip() for ln in examples.splitlines() if ln.strip()]
    assert any(ln.startswith(f"onnxops {name}") for ln in lines), lines
    for line in lines:
        m = re.match(rf"onnxops {re.escape(name)}(?: (\w[\w-]*))?", line)
        if not m:
            continue
        sub = m[1] if m[1] and not m[1].startswith("-") and m[1] in help_text else None
        options_help = _help(capsys, name, sub) if sub else help_text
        for flag in re.findall(r"(?<![\w-])(--[a-z][a-z-]+|-[a-zA-Z])\b", line.split("#")[0]):
            assert flag in options_help, f"{name}: {flag!r} in {line!r} is not an option"


def test_usage_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert f"  {name} " in out


def test_readme_local_training_command_trains(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```sh\n(.*?)```", readme, flags=re.S) if "train --spec-file" in b]
    command = block.replace("\\\n", " ").replace("$PWD", str(tmp_path)).strip()
    argv = shlex.split(command)
    assert argv[0] == ".venv/bin/onnxops" and argv[1] == "train"
    argv = [a.replace("examples/", f"{ROOT}/examples/") for a in argv[2:]]
    proc = subprocess.run(
        [sys.executable, "-m", "onnxops", "train", *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["ok"] is True and result["metrics"]["accuracy"] >= 0.9  # the example's gate
    assert Path(result["artifact"]["uri"].removeprefix("file://")).is_file()
