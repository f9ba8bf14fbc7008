"""The README runs as written: every `liqheat ...` command it shows works.

- Concrete command lines (in code blocks, and inline code spans without placeholders) run, in
  README order, on one home: a copy of the demo warehouse (``demo_home``, built once per
  session) as ``./data`` of the folder the commands run from, ``../shared`` beside it (the real
  shared data), and the files the import example names copied there. Each must exit 0.
- Synopses (spans with placeholders such as ``S``, ``FILE.csv``, ``[...]``) and commands named in
  prose (``liqheat report``; run only for ``doctor`` and ``--help``) are checked against the
  CLI itself: the command exists and every ``--option`` they show is one of its options.
- Not run, only checked as synopses: ``serve`` (runs until stopped), ``nightly`` and
  ``backfill`` (download from the network; the README's lines name a Dask scheduler HOST),
  ``ingest`` and ``today`` (network), and ``demo`` (the home is the demo's own result).
"""

from __future__ import annotations

import re
import shlex
import shutil
import time
from pathlib import Path

import click
import pytest

from flows.cli import cli
from tests.cli import ROOT, liqheat

README = ROOT / "README.md"
DATA = ROOT.parent / "shared" / "data"
#: files the README's import example names -> the real file standing in for them
EXAMPLE_FILES = {"btcusdt-5m.csv": DATA / "btcusdt-perp-5m-ohlc-oi-2026-06-08_14.csv"}
#: commands that are never run (see the module docstring)
NOT_RUN = {"serve", "nightly", "backfill", "ingest", "today", "demo"}

_BLOCK = re.compile(r"^```[\w-]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_SPAN = re.compile(r"`([^`]+)`", re.DOTALL)
#: the README's placeholder words (S = a symbol, D = a day, ...)
_WORDS = "S|S2|D|E|N|NAME|FILE|FILE.csv|URL|DIR|SOURCE|QUERY|RANGE|T|HOST|PORT|ROLE|COLUMN"
_PLACEHOLDER = re.compile(rf"\.\.\.|[\[\]|]|(?<![\w.-])(?:{_WORDS})(?![\w-])")


def _strip_quotes(text: str) -> str:
    return re.sub(r"\"[^\"]*\"|'[^']*'", "", text)


def readme_commands() -> list[str]:
    """Every `liqheat ...` command of the README, in order, whitespace normalised, without a
    `.venv/bin/` prefix or trailing comment."""
    text = README.read_text(encoding="utf-8")
    found: list[tuple[int, str]] = []
    for block in _BLOCK.finditer(text):
        for offset, line in enumerate(block.group(1).splitlines()):
            cmd = line.split("  #")[0].strip().removeprefix(".venv/bin/")
            if cmd.startswith("liqheat "):
                found.append((block.start(1) + offset, cmd))
    prose = _BLOCK.sub(lambda m: " " * len(m.group(0)), text)  # offsets kept
    for span in _SPAN.finditer(prose):
        cmd = " ".join(span.group(1).split()).removeprefix(".venv/bin/")
        if cmd.startswith("liqheat ") or cmd == "liqheat":
            found.append((span.start(), cmd))
    return [cmd for _, cmd in sorted(found)]


def _is_synopsis(cmd: str) -> bool:
    return "..." in cmd or bool(_PLACEHOLDER.search(_strip_quotes(cmd)))


def _command(words: list[str]) -> tuple[click.Command, list[str]]:
    """The click command named by the leading words, and the words after it."""
    command: click.Command = cli
    rest = list(words)
    while isinstance(command, click.Group) and rest and rest[0] in command.commands:
        command = command.commands[rest.pop(0)]
    return command, rest


def _options(command: click.Command) -> set[str]:
    names = {"--help", "-h"}
    for param in command.params:
        names.update(getattr(param, "opts", []))
        names.update(getattr(param, "secondary_opts", []))
    return names


COMMANDS = readme_commands()


def test_the_readme_shows_import_and_the_commands_are_found() -> None:
    assert any(c.startswith("liqheat import ") and not _is_synopsis(c) for c in COMMANDS)
    assert len(COMMANDS) > 20


@pytest.mark.parametrize("cmd", sorted({c for c in COMMANDS if _is_synopsis(c) or
                                         len(c.split()) < 3}))  # fmt: skip
def test_every_synopsis_names_a_real_command_and_real_options(cmd: str) -> None:
    words = _strip_quotes(cmd).replace("(", " ").replace(")", " ").replace("\\|", " ").split()
    command, rest = _command(words[1:])
    if rest[:1] == ["..."]:
        return  # "liqheat ..." stands for any command
    assert command is not cli or not rest or rest[0].startswith("-"), f"unknown command: {cmd}"
    known = _options(command)
    for word in rest:
        if word.startswith("--"):
            assert word.split("=")[0] in known, f"README shows unknown option {word}: {cmd}"


@pytest.mark.skipif(not all(p.exists() for p in EXAMPLE_FILES.values()), reason="needs data")
def test_every_concrete_readme_command_runs(demo_home: Path, tmp_path: Path) -> None:
    # the commands run from a checkout-like folder: ./data is the home, ../shared the real
    # shared data (README lines name ../shared/data/...), the import example's file beside it
    work = tmp_path / "checkout"
    home = work / "data"
    shutil.copytree(demo_home, home, ignore=shutil.ignore_patterns("prefect", "*.lock"))
    (tmp_path / "shared").symlink_to(ROOT.parent / "shared")
    for name, source in EXAMPLE_FILES.items():
        shutil.copy(source, work / name)
    # two words (`liqheat report`) name a command in prose: checked as synopses; only the
    # ones that are complete commands run
    runnable = [
        c
        for c in COMMANDS
        if not _is_synopsis(c) and (len(c.split()) > 2 or c in ("liqheat --help", "liqheat doctor"))
    ]
    ran, failed = [], []
    for cmd in runnable:
        args = shlex.split(cmd)[1:]
        if args[0] in NOT_RUN:
            continue
        t0 = time.perf_counter()
        out = liqheat(home, *args, timeout=300)
        ran.append(f"{cmd} ({time.perf_counter() - t0:.1f}s)")
        if out.returncode != 0:
            last = (out.stderr.strip().splitlines() or [""])[-1]
            failed.append(f"{cmd}  ->  exit {out.returncode}: {last}")
    assert not failed, "README commands that do not work:\n" + "\n".join(failed)
    print("\n".join(ran))  # which ran, and how long each took (pytest -s)
    assert any(c.startswith("liqheat import ") for c in ran)
    assert len(ran) >= 8, ran
