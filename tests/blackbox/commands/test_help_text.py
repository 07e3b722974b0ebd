"""Help that matches the README and reads at 80 columns (issue 14, "Done when"): every command and
flag of the README's command table exists (`--help` of each), and `gatekey --help` and every
command's help fit 80 columns whatever the terminal's width, with a whole line per command in
the lists (click cuts a long first sentence short with "...")."""

from __future__ import annotations

import re

import pytest

from blackbox_env import REPO, Env

pytestmark = pytest.mark.blackbox

README = REPO / "README.md"
CELL = re.compile(r"(?<!\\)\|")  # a table cell ends at a | that is not escaped
FLAG = re.compile(r"(?<![\w-])(--?[a-z][a-z0-9-]*)")


def _table_after(header: str) -> list[list[str]]:
    """The rows of the README's table whose header line is ``header`` (cells, stripped)."""
    lines = README.read_text().splitlines()
    assert header in lines, f"the README has no table headed {header!r}"
    rows = []
    for line in lines[lines.index(header) + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in CELL.split(line)[1:-1]])
    assert rows, f"the README's table {header!r} is empty"
    return rows


def _readme_commands() -> list[tuple[list[str], list[str]]]:
    """(command words, flags) of each usage in the README's command table."""
    found = []
    for cells in _table_after("| command | does |"):
        for usage in re.findall(r"`([^`]+)`", cells[0]):
            usage = usage.replace("\\|", "|")
            words = []
            for token in usage.split():
                if token[0] in "-[":
                    break
                words.append(token)
            found.append((words, sorted(set(FLAG.findall(usage)))))
    assert len(found) > 10, found
    return found


def _readme_executables() -> list[str]:
    return [
        re.sub(r"`", "", cells[0])
        for cells in _table_after("| executable | with no arguments prints |")
    ]


@pytest.mark.parametrize(
    ("words", "flags"), _readme_commands(), ids=lambda v: " ".join(v) if v else "-"
)
def test_every_readme_command_and_flag_exists(gk: Env, words: list[str], flags: list[str]):
    r = gk.run(*words, "--help")
    assert r.code == 0, r.err
    assert r.out.startswith(f"Usage: gatekey {' '.join(words)} "), r.out
    for flag in flags:
        assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", r.out), (
            f"the README gives {' '.join(words)} {flag}, which its --help does not list:\n{r.out}"
        )


def test_every_readme_executable_takes_the_same_commands(gk: Env):
    for name in _readme_executables():
        r = gk.run("--help", exe_name=name)
        assert r.code == 0, (name, r.err)
        assert f"Usage: {name} " in r.out
        for words, _flags in _readme_commands():
            assert re.search(rf"^  {words[0]} ", r.out, re.M), (name, words)


def test_the_group_options_the_readme_names_exist(gk: Env):
    r = gk.run("--help")
    for flag in ("-v", "--verbose", "--debug", "--version", "--help"):
        assert re.search(rf"(?<![\w-]){flag}(?![\w-])", r.out), flag


def _commands_listed(help_text: str) -> list[str]:
    """The command names in a group's "Commands:" section."""
    section = help_text.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]
    return [line.split()[0] for line in section.splitlines() if re.match(r"  \S", line)]


def _every_help(gk: Env, columns: str) -> dict[str, str]:
    """Every help page, by command path ("" for the group), at a terminal of ``columns``."""
    pages: dict[str, str] = {}
    todo: list[list[str]] = [[]]
    while todo:
        words = todo.pop()
        r = gk.run(*words, "--help", COLUMNS=columns)
        assert r.code == 0, (words, r.err)
        pages[" ".join(words)] = r.out
        if "\nCommands:\n" in r.out:
            todo += [[*words, name] for name in _commands_listed(r.out)]
    return pages


@pytest.mark.parametrize("columns", ["80", "200"])
def test_every_help_page_fits_80_columns(gk: Env, columns: str):
    pages = _every_help(gk, columns)
    assert {"", "get", "status", "profile add", "config validate"} <= set(pages)
    for path, text in pages.items():
        for line in text.splitlines():
            assert len(line) <= 80, f"gatekey {path} --help, {len(line)} columns: {line!r}"


def test_command_lists_give_a_whole_line_per_command(gk: Env):
    for path, text in _every_help(gk, "80").items():
        if "\nCommands:\n" not in text:
            continue
        section = text.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]
        for line in section.splitlines():
            assert not line.rstrip().endswith("..."), f"gatekey {path} --help: {line!r}"
            assert len(line.split(None, 1)) == 2, f"gatekey {path} --help: no summary: {line!r}"


def test_every_command_says_what_it_does(gk: Env):
    for path, text in _every_help(gk, "80").items():
        body = text.split("\n\n", 2)
        assert len(body) >= 2, f"gatekey {path} --help says nothing: {text}"
        assert body[1].strip(), f"gatekey {path} --help says nothing: {text}"
