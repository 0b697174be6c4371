"""The command line: help for every command and option, clear one-line errors, exit codes."""
from __future__ import annotations

import subprocess
import sys

import pytest

from harness.cli import build_parser, main


def _subcommands():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices


def test_every_option_has_help():
    for name, sub in _subcommands().items():
        for action in sub._actions:
            if action.dest != "help":
                assert action.help, f"harness {name} {action.option_strings}: no help text"


def test_help_texts_print_no_doubled_percent():
    """argparse turns %% into % in an option's help but not in a description or epilog."""
    for name, sub in _subcommands().items():
        assert "%%" not in sub.format_help(), f"harness {name} --help prints '%%'"


@pytest.mark.parametrize("command", ["train", "attack", "replay", "run", "report"])
def test_subcommand_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: harness " + command in capsys.readouterr().out


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "harness", "--help"], capture_output=True, text=True, check=True)
    assert "train" in out.stdout and "replay" in out.stdout


def test_user_error_is_one_line_exit_2(tmp_path, capsys):
    code = main(["train", "--model", "no-such-model", "--run", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown model 'no-such-model'; available:" in err and "digits-mlp" in err
    assert "Traceback" not in err
