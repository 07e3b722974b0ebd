"""The gateway recipes: the gatekey profiles README.md shows per gateway, as the tests use them.

Each recipe is ``recipes/<name>.toml``, written with the example values a reader sees (hosts such
as ``https://login.example.com``). README.md holds each one verbatim between
``<!-- recipe: <name> -->`` and ``<!-- /recipe -->`` (tests/unit/test_gateway_recipes.py holds
the two equal), and the gateway tests load it here with the example values replaced by the live
peers' ones, so the profile a reader copies is the profile that was proven.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

HERE = Path(__file__).resolve().parent / "recipes"
README_BLOCK = re.compile(
    r"<!-- recipe: (?P<name>[a-z0-9-]+) -->\n```toml\n(?P<body>.*?)```\n<!-- /recipe -->", re.S
)


def names() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.toml"))


def text(name: str) -> str:
    return (HERE / f"{name}.toml").read_text(encoding="utf-8")


def recipe(name: str, live: Mapping[str, str]) -> str:
    """Recipe ``name`` with each example value (key) replaced by the live one (value).

    Every example value must occur in the recipe: a test cannot silently prove another profile.
    """
    body = text(name)
    for example, value in live.items():
        if example not in body:
            raise KeyError(f"recipe {name} has no {example!r} to replace")
        body = body.replace(example, value)
    return body


def in_readme(readme: str) -> dict[str, str]:
    """The recipes README.md shows, by name."""
    return {m["name"]: m["body"] for m in README_BLOCK.finditer(readme)}
