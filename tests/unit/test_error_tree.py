"""errors.py is the one home of gatekey's error classes, and its docstring draws them all.

The tree in the docstring is what a reader (and the README's exit-code table) trusts: every class
defined anywhere in the installed package that is an exception must be defined in errors.py and
drawn there once, under its real base class, with its real exit code. Internal errors (OSError
and ValueError subclasses, always caught and reworded) are drawn in their own branch, under the
built-in they extend.
"""

from __future__ import annotations

import ast
import builtins
import re
from pathlib import Path

import gatekey
from gatekey import errors

PACKAGE = Path(gatekey.__file__).parent
# A line of the tree: "    ├── ConfigError (78)   what it says", "    │   └── LockTimeout (75)",
# "    OSError (built-in)" (the root of the internal branch) or "    └── NotRegular   ...".
ENTRY = re.compile(
    r"^    (?P<lead>(?:│   |    )*)(?P<branch>├── |└── )?(?P<name>[A-Z]\w*)"
    r"(?: \((?P<tag>[\w-]+)\))?(?: .*)?$"
)


def exception_classes() -> dict[str, list[str]]:
    """Every exception class defined in the package (found by reading its source, so a class in
    a module nothing imports counts too): name -> the modules defining it."""
    bases: dict[tuple[str, str], list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                names = [
                    b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "")
                    for b in node.bases
                ]
                bases[(module, node.name)] = names
    found: dict[str, list[str]] = {}
    changed = True
    while changed:  # a class is an exception if a base is a built-in one or a found one
        changed = False
        for (module, name), parents in bases.items():
            if module in found.get(name, []):
                continue
            if any(_builtin_exception(p) or p in found for p in parents):
                found.setdefault(name, []).append(module)
                changed = True
    return found


def _builtin_exception(name: str) -> bool:
    value = getattr(builtins, name, None)
    return isinstance(value, type) and issubclass(value, BaseException)


def drawn_tree() -> list[tuple[str, str | None, str | None]]:
    """(name, tag, parent) for every entry of the tree in errors.py's docstring, in order: the
    tag is the exit code, "built-in" for a root the package does not define, or None."""
    entries: list[tuple[str, str | None, str | None]] = []
    stack: list[str] = []
    for line in (errors.__doc__ or "").splitlines():
        match = ENTRY.match(line)
        if not match:
            continue
        depth = len(match["lead"]) // 4 + (1 if match["branch"] else 0)
        assert depth <= len(stack), f"a tree line without its parent: {line!r}"
        del stack[depth:]
        entries.append((match["name"], match["tag"], stack[-1] if stack else None))
        stack.append(match["name"])
    return entries


def test_every_exception_class_is_defined_in_errors_py():
    outside = {
        name: modules
        for name, modules in exception_classes().items()
        if modules != ["gatekey.errors"]
    }
    assert not outside, f"error classes defined outside gatekey/errors.py: {outside}"


def test_the_docstring_draws_every_error_class_once():
    drawn = [name for name, tag, _ in drawn_tree() if tag != "built-in"]
    assert len(drawn) == len(set(drawn)), f"drawn twice: {sorted(drawn)}"
    defined = set(exception_classes())
    assert set(drawn) == defined, (
        f"defined but not drawn: {sorted(defined - set(drawn))}; "
        f"drawn but not defined: {sorted(set(drawn) - defined)}"
    )


def test_each_drawn_entry_has_its_class_exit_code_and_base():
    tree = drawn_tree()
    assert tree, "no tree found in errors.py's docstring"
    for name, tag, parent in tree:
        if tag == "built-in":  # the root of the internal branch
            assert parent is None, f"{name}: a built-in is drawn as a root"
            assert _builtin_exception(name), f"{name} is not a built-in exception"
            continue
        cls = getattr(errors, name, None)
        assert isinstance(cls, type), f"{name} is drawn but gatekey.errors has no such class"
        base = cls.__bases__[0].__name__
        if issubclass(cls, errors.HelperError):
            assert tag is not None, f"{name}: draw its exit code, e.g. {name} ({cls.exit_code})"
            assert tag == str(cls.exit_code), f"{name}: drawn ({tag}), exit_code {cls.exit_code}"
            assert parent == (None if cls is errors.HelperError else base), (name, parent, base)
        else:  # internal: under the built-in it extends, with no exit code of its own
            assert tag is None, f"{name} is internal: it has no exit code to draw"
            assert parent == base, f"{name} is drawn under {parent}, but extends {base}"
