"""The README's examples keep working: every ```python block runs, and every `plastic ...` line
of its ```bash blocks parses with the CLI's own parser (a renamed flag, subcommand, preset or
config key in the README fails here), and so does the run command's sweep and report
(scripts/run.sh). Nothing here trains: train lines only resolve their config (--print-config),
sweep lines only plan their runs (--dry-run)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from plastic.cli import build_parser, main

README = Path(__file__).resolve().parents[1] / "README.md"


def fenced_blocks(text: str, language: str) -> list[tuple[int, str]]:
    """(line number of the block's first code line, code) of every ```language block."""
    blocks, lines = [], text.splitlines()
    start = None
    for number, line in enumerate(lines, 1):
        if start is None and line.strip() == f"```{language}":
            start = number + 1
        elif start is not None and line.strip() == "```":
            blocks.append((start, "\n".join(lines[start - 1:number - 1])))
            start = None
    if start is not None:
        raise ValueError(f"README.md:{start - 1}: ```{language} block never closed")
    return blocks


def _logical_lines(code: str, first: int) -> list[tuple[int, str]]:
    """Shell lines with their backslash continuations joined, each with its first line number."""
    joined, pending, pending_line = [], "", first
    for number, line in enumerate(code.splitlines(), first):
        if not pending:
            pending_line = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append((pending_line, pending + line))
        pending = ""
    if pending:
        joined.append((pending_line, pending))
    return joined


def plastic_commands(text: str) -> list[tuple[int, list[str]]]:
    """(README line, argv after `plastic`) of every plastic invocation in the ```bash blocks."""
    return [command for first, code in fenced_blocks(text, "bash") for command in shell_commands(code, first)]


def shell_commands(code: str, first: int = 1) -> list[tuple[int, list[str]]]:
    """(line, argv after `plastic`) of every plastic invocation in shell code whose first line is ``first``.

    `for VAR in A B ...; do` loops are expanded over their values; leading VAR=value assignments
    are dropped; lines that do not run `plastic` / `.venv/bin/plastic` are skipped."""
    commands = []
    loop: tuple[str, list[str]] | None = None
    for number, line in _logical_lines(code, first):
        header = re.match(r"\s*for (\w+) in ([^;]+); do\s*$", line)
        if header:
            loop = (header.group(1), header.group(2).split())
            continue
        if re.match(r"\s*done\b", line):
            loop = None
            continue
        values = loop[1] if loop else [None]
        for value in values:
            expanded = line
            if loop:
                expanded = re.sub(rf"\$\{{{loop[0]}\}}|\${loop[0]}\b", value, expanded)
            words = shlex.split(expanded, comments=True)
            while words and re.match(r"^\w+=", words[0]):
                words = words[1:]
            if words and (words[0] == "plastic" or words[0].endswith("/bin/plastic")):
                commands.append((number, words[1:]))
    return commands


TEXT = README.read_text(encoding="utf-8")
PYTHON_BLOCKS = fenced_blocks(TEXT, "python")
COMMANDS = plastic_commands(TEXT)


def test_the_readme_has_examples_to_check():
    assert PYTHON_BLOCKS, "README.md: no ```python block found"
    assert {argv[0] for _, argv in COMMANDS} >= {"train", "evaluate", "sweep", "report", "synthetic"}


def test_the_scripts_and_paths_the_bash_blocks_name_exist():
    root = README.parent
    named = [(number, word)
             for first, code in fenced_blocks(TEXT, "bash")
             for number, line in _logical_lines(code, first)
             for word in shlex.split(line, comments=True)
             if re.match(r"^(scripts|tests|benchmarks)/", word)]
    assert named, "README.md: no scripts/, tests/ or benchmarks/ path in the ```bash blocks"
    missing = [f"README.md:{line}: {word}" for line, word in named if not (root / word).exists()]
    assert not missing, missing


@pytest.mark.parametrize(("line", "code"), PYTHON_BLOCKS, ids=[f"README.md:{n}" for n, _ in PYTHON_BLOCKS])
def test_python_block_runs(line, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # Pad so that a traceback names the README's own line numbers.
    compiled = compile("\n" * (line - 1) + code, str(README), "exec")
    exec(compiled, {"__name__": "__readme__"})


def assert_parses(where: str, argv: list[str], capsys) -> None:
    """``plastic ARGV`` parses with the CLI's own parser into a subcommand."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        error = capsys.readouterr().err.strip()
        pytest.fail(f"{where}: `plastic {shlex.join(argv)}` does not parse: {error}")
    assert callable(args.func)


@pytest.mark.parametrize(("line", "argv"), COMMANDS, ids=[f"README.md:{n}" for n, _ in COMMANDS])
def test_plastic_command_parses(line, argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert_parses(f"README.md:{line}", argv, capsys)
    # Beyond the parser: resolve what the command would run, and run nothing.
    if argv[0] == "train":
        rc = main([*argv, "--print-config"])
    elif argv[0] == "sweep":  # one seed is enough to check games, presets and keys, and 5× quicker
        rc = main([*argv, "--seeds", "1", "--dry-run"])
    else:
        return
    assert rc == 0, f"README.md:{line}: `plastic {shlex.join(argv)}` is refused: {capsys.readouterr().err}"


RUN_SCRIPT = README.parent / "scripts" / "run.sh"


def test_the_run_commands_main_job_is_one_the_cli_accepts(tmp_path, monkeypatch, capsys):
    """The README's run command (scripts/run.sh) trains a sweep and reports it: its sweep must plan
    the four runs the README describes (drq and plastic, 2 seeds each) and its report must parse,
    with OUT set to a fresh folder."""
    commands = shell_commands(RUN_SCRIPT.read_text(encoding="utf-8"))
    assert [argv[0] for _, argv in commands] == ["sweep", "report"], commands
    monkeypatch.chdir(tmp_path)
    out = str(tmp_path / "demo")
    for line, argv in commands:
        argv = [word.replace("$out", out) for word in argv]
        assert_parses(f"scripts/run.sh:{line}", argv, capsys)
        if argv[0] == "sweep":
            capsys.readouterr()
            assert main([*argv, "--dry-run"]) == 0, capsys.readouterr().err
            planned = capsys.readouterr()
            assert planned.out.count("would run") + planned.err.count("would run") == 4, planned
