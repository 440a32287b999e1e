"""Every ``asectl ... --help`` shows its texts as written (issue 18, the README section): a word in
square brackets (``[service]``, ase.toml's table) is not eaten as Rich markup, and a paragraph is
wrapped once, by the terminal, not also at the source's line breaks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from ase_serving.cli.helptext import unwrap
from ase_serving.cli.main import make_app

#: A word in square brackets, as Rich would take for a style tag: ``[service]``, ``[wrapper]``.
_BRACKETED = re.compile(r"\[[A-Za-z_][\w.-]*\]")


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
        yield from _commands(sub, (*path, name))


ROOT = typer.main.get_command(make_app())
COMMANDS = dict(_commands(ROOT))
PATHS = [pytest.param(path, id=" ".join(path) or "asectl") for path in COMMANDS]


def _source(text: str | None) -> str:
    """A help text as its source wrote it: what asectl shows it from, its markup escapes undone."""
    return (text or "").replace("\\[", "[")


def _texts(command: Any) -> list[str]:
    return [
        _source(t)
        for t in (command.help, command.epilog, *(getattr(p, "help", None) for p in command.params))
        if t
    ]


def _help(path: tuple[str, ...], columns: int) -> str:
    result = CliRunner().invoke(make_app(list(path)), [*path, "--help"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.output


def test_the_commands_are_all_there() -> None:
    paths = {" ".join(p) for p in COMMANDS}
    assert {"loader run", "loader build", "init", "config upload", "call", "cluster status"} <= paths
    assert len(paths) > 25


@pytest.mark.parametrize("path", PATHS)
def test_no_bracketed_word_of_the_source_disappears(path: tuple[str, ...]) -> None:
    words = {w for text in _texts(COMMANDS[path]) for w in _BRACKETED.findall(text)}
    out = _help(path, 200)
    missing = sorted(w for w in words if w not in out)
    assert missing == [], f"asectl {' '.join(path)} --help does not show {missing}:\n{out}"


@pytest.mark.parametrize("path", PATHS)
def test_each_prose_paragraph_is_one_line_on_a_wide_terminal(path: tuple[str, ...]) -> None:
    """On a terminal wide enough, a paragraph of help or epilogue is one line of the output: the
    source's own line breaks are not kept (on a narrow one they would break each line twice)."""
    out = _help(path, 1000)
    lines = [re.sub(r"\s+", " ", line).strip(" │") for line in out.splitlines()]
    command = COMMANDS[path]
    for text in (command.help, command.epilog):
        for para in unwrap(_source(text)).split("\n\n"):
            if "\n" in para:  # literal (examples, a list): kept as written
                continue
            para = re.sub(r"\s+", " ", para).strip()
            assert any(para in line for line in lines), (
                f"asectl {' '.join(path)} --help splits {para!r}:\n{out}"
            )


def test_loader_run_shows_the_service_table() -> None:
    out = _help(("loader", "run"), 200)
    assert "default: [service] name or the folder name" in out
    assert "default: [service] version or 1.0.0" in out
