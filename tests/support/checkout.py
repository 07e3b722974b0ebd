"""The checkout as a person or an admin has it: a copy to run its scripts in (so that they never
touch the suite's own .venv or build/), and the shell and TOML blocks of its Markdown, to run
exactly what the README and the docs tell people to type."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from blackbox_env import REPO

# What a fresh clone does not have: this machine's environments, caches and build output.
NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "dist",
    "node_modules",
    "__pycache__",
    "*.egg-info",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    "results",
)


def copy_checkout(dest: Path) -> Path:
    """A copy of the checkout's files at ``dest`` (created), without what a clone lacks."""
    shutil.copytree(REPO, dest, ignore=NOT_IN_A_CLONE, symlinks=True)
    return dest


def real_python_dir() -> Path:
    """The folder of the real interpreter behind the suite's venv (its python3 and pip): what a
    person's PATH finds, never a version manager's shim."""
    return Path(sys.executable).resolve().parent


def section(markdown: str, heading: str) -> str:
    """The text under ``## heading`` up to the next heading of the same level."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    assert match, f"no '## {heading}' section"
    return match.group(1)


def code_blocks(markdown: str, lang: str) -> list[str]:
    """The fenced code blocks of one language, in order."""
    return re.findall(rf"^```{re.escape(lang)}\n(.*?)^```", markdown, re.M | re.S)
