"""The test suite's layout, so that a newcomer finds their way and the next test lands in its place.

- test modules live in ``tests/unit/`` (in process), ``tests/blackbox/<area>/`` (the installed
  executables), ``tests/peers/`` (the fakes' and peers' own tests) or ``tests/reliability/``;
  none directly in ``tests/``;
- no module imports a test module or conftest: shared helpers live in ``tests/support/`` (which
  conftest puts on the path), fixtures in conftest;
- test module names are unique across the directories: pytest imports each by its basename
  (no ``__init__.py``, rootdir import mode), and a second ``test_x.py`` would fail to import.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
HOMES = ("unit", "blackbox", "peers", "reliability")


def python_files(root: Path) -> list[Path]:
    """Every Python module of the suite: test modules, conftest, support (not npm's)."""
    return sorted(p for p in root.rglob("*.py") if "node_modules" not in p.relative_to(root).parts)


def find_test_modules(root: Path) -> list[Path]:
    support = root / "support"
    found = python_files(root)
    return [p for p in found if p.name.startswith("test_") and support not in p.parents]


def imported_modules(path: Path) -> list[str]:
    """The top-level names of everything ``path`` imports (at any depth of the module)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module.split(".")[0])
    return names


def layout_problems(root: Path) -> list[str]:
    """What breaks the layout under ``root`` (a tests/ directory), one line each."""
    problems = []
    tests = find_test_modules(root)
    test_names = {p.stem for p in tests}
    for path in python_files(root):
        where = path.relative_to(root)
        for name in imported_modules(path):
            if name == "conftest" or name in test_names or name == "tests":
                problems.append(f"{where} imports {name}: shared helpers go to tests/support/")
    by_name: dict[str, list[str]] = defaultdict(list)
    for path in tests:
        where = path.relative_to(root)
        by_name[path.name].append(str(where))
        home = where.parts[0]
        if len(where.parts) == 1:
            problems.append(f"{where} sits directly in tests/: move it to one of {HOMES}")
        elif home not in HOMES:
            problems.append(f"{where} is outside {HOMES}")
        elif home == "blackbox" and len(where.parts) != 3:
            problems.append(f"{where}: black-box tests go in tests/blackbox/<area>/")
    for name, places in sorted(by_name.items()):
        if len(places) > 1:
            problems.append(f"{name} twice ({', '.join(places)}): test module names are unique")
    return problems


def test_the_suite_follows_its_layout() -> None:
    problems = layout_problems(TESTS)
    assert problems == [], "\n".join(problems)


def test_every_home_holds_tests() -> None:
    # The check above passes vacuously if it looks in the wrong place.
    found = {p.relative_to(TESTS).parts[0] for p in find_test_modules(TESTS)}
    assert found == set(HOMES)
    assert (TESTS / "conftest.py").is_file()
    assert (TESTS / "support" / "blackbox_env.py").is_file()


def test_each_breach_is_reported(tmp_path: Path) -> None:
    """A layout check that could not fail would prove nothing: plant each breach."""
    files = {
        "conftest.py": "import sys\n",
        "test_flat.py": "def test_x():\n    pass\n",
        "unit/test_a.py": "from conftest import Env\n",
        "unit/test_b.py": "def helper():\n    from test_a import x\n",
        "reliability/test_b.py": "import test_flat\n",
        "blackbox/test_no_area.py": "",
        "blackbox/run/test_ok.py": "import json\nfrom blackbox_env import Env\n",
        "elsewhere/test_c.py": "",
        "support/helper.py": "from conftest import Env\n",
        "peers/oidc/node_modules/x/test_ignored.py": "import conftest\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    problems = layout_problems(tmp_path)
    expected = [
        "unit/test_a.py imports conftest",
        "unit/test_b.py imports test_a",
        "reliability/test_b.py imports test_flat",
        "support/helper.py imports conftest",
        "test_flat.py sits directly in tests/",
        "blackbox/test_no_area.py: black-box tests go in tests/blackbox/<area>/",
        "elsewhere/test_c.py is outside",
        "test_b.py twice (reliability/test_b.py, unit/test_b.py)",
    ]
    for fragment in expected:
        assert any(fragment in problem for problem in problems), (fragment, problems)
    assert len(problems) == len(expected), problems
    assert not any("test_ok" in problem or "node_modules" in problem for problem in problems)
