"""cache.IndexEntry: the fast-path index's one type, recorded by the full path and looked up by the
cache hit, which trusts nothing in it the full path could not have written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gatekey.cache import FileCache, IndexEntry

KEY = "0123456789abcdef0123456789abcdef01234567"


def entry(**changes: Any) -> IndexEntry:
    values: dict[str, Any] = {
        "config": [[1, 2, 3, 4], None],
        "profile": "work",
        "key": KEY,
        "store": "file",
        "environment": {"VAULT_ADDR": "https://vault.example", "UNSET": None},
        "min_ttl": 3900,
        "output": "json",
        "auth_scheme": "bearer",
        "headers": {"X-Org-Route": "prod"},
        "timeouts": {"interactive": 120.0, "mid_session_refresh": 15.0, "silent": 10.0},
        "log_file": "/var/log/gatekey/runs.jsonl",
        **changes,
    }
    return IndexEntry(**values)


def test_what_is_recorded_is_looked_up(tmp_path: Path):
    cache = FileCache(str(tmp_path))
    cache.record("sel", entry())
    found = cache.lookup("sel")
    assert found is not None
    assert found.to_json() == entry().to_json()
    assert (found.profile, found.key, found.store, found.kernel_name) == ("work", KEY, "file", None)
    assert (found.output, found.auth_scheme, found.min_ttl) == ("json", "bearer", 3900)
    assert cache.lookup("another selection") is None


def test_index_json_keeps_its_layout(tmp_path: Path):
    """The file other gatekey versions read: the same keys, in the same order, as before."""
    cache = FileCache(str(tmp_path))
    cache.record("sel", entry())
    cache.record("kernel", entry(store="kernel", kernel_name=f"gatekey:abc:{KEY}"))
    data = json.loads((tmp_path / "index.json").read_text())
    assert list(data["sel"]) == [
        "config", "profile", "key", "store", "environment", "min_ttl", "output",
        "auth_scheme", "headers", "timeouts", "log_file",
    ]  # fmt: skip
    assert list(data["kernel"])[3:5] == ["store", "kernel_name"]
    assert data["sel"]["min_ttl"] == 3900  # as the config gave it, not turned into 3900.0
    assert data["sel"] == entry().to_json()


def test_a_kernel_entry_is_looked_up_with_its_kernel_name(tmp_path: Path):
    cache = FileCache(str(tmp_path))
    cache.record("sel", entry(store="kernel", kernel_name=f"gatekey:abc:{KEY}"))
    found = cache.lookup("sel")
    assert found is not None
    assert (found.store, found.kernel_name) == ("kernel", f"gatekey:abc:{KEY}")


@pytest.mark.parametrize(
    "changes",
    [
        {"store": "none"},  # recorded (the full path serves it), never a hit
        {"store": "kernel"},  # no kernel_name
        {"store": "kernel", "kernel_name": "gatekey:abc:another-key"},
        {"key": "k" * 40},
        {"key": KEY[:-1]},
        {"config": "[[1, 2, 3, 4]]"},
        {"profile": 5},
        {"min_ttl": -1},
        {"min_ttl": True},
        {"output": "header"},
        {"output": "env"},
        {"auth_scheme": "basic"},
        {"headers": {"Authorization\r\nX": "1"}},
        {"headers": {"X-Route": "a\r\nAuthorization: Bearer x"}},
        {"headers": ["X-Route"]},
        {"timeouts": {"silent": 601}},
        {"timeouts": {"silent": 0}},
        {"timeouts": {"forever": 10}},
        {"environment": {"VAULT_ADDR": 5}},
        {"environment": []},
        {"log_file": "runs.jsonl"},
        {"log_file": 5},
    ],
)
def test_lookup_is_a_miss_for_anything_the_full_path_could_not_have_written(
    tmp_path: Path, changes: dict[str, Any]
):
    cache = FileCache(str(tmp_path))
    cache.write_index("sel", dict(entry().to_json(), **changes))
    assert cache.lookup("sel") is None


@pytest.mark.parametrize("raw", [None, [], "entry", 5, {}])
def test_an_entry_that_is_not_an_object_is_a_miss(raw: object):
    assert IndexEntry.from_json(raw) is None
