"""The gateway recipes README.md shows are the profiles the gateway tests prove.

Each ``tests/support/gateways/recipes/<name>.toml`` is shown verbatim in README.md, every
recipe README.md shows has its file, and a test under tests/blackbox/gateways loads each file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib

from gateways import recipes

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
GATEWAY_TESTS = "\n".join(
    p.read_text(encoding="utf-8")
    for p in sorted((ROOT / "tests/blackbox/gateways").glob("test_*.py"))
)


def test_there_are_recipes() -> None:
    assert recipes.names(), "no recipe in tests/support/gateways/recipes"


def test_readme_shows_only_recipes_that_exist() -> None:
    assert set(recipes.in_readme(README)) <= set(recipes.names())


@pytest.mark.parametrize("name", recipes.names())
def test_readme_shows_the_recipe_verbatim(name: str) -> None:
    assert recipes.in_readme(README).get(name) == recipes.text(name), (
        f"README.md must show tests/support/gateways/recipes/{name}.toml between "
        f"<!-- recipe: {name} --> and <!-- /recipe -->"
    )


@pytest.mark.parametrize("name", recipes.names())
def test_a_gateway_test_proves_the_recipe(name: str) -> None:
    assert f'"{name}"' in GATEWAY_TESTS, f"no test under tests/blackbox/gateways loads {name}"


@pytest.mark.parametrize("name", recipes.names())
def test_the_recipe_is_valid_toml(name: str) -> None:
    assert tomllib.loads(recipes.text(name))
