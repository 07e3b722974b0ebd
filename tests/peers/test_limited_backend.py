"""The limit-enforcing keyring backend itself (tests/support/limited_backend.py): it refuses what
Windows Credential Manager refuses, as the keychain tests rely on."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest

from blackbox_env import SUPPORT


def load_limited_backend() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "limited_backend_under_test", SUPPORT / "limited_backend.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_limited_backend_itself_refuses_values_over_2560_utf16_bytes(tmp_path, monkeypatch):
    monkeypatch.setenv("LIMITED_KEYRING_FILE", str(tmp_path / "kr.json"))
    backend = load_limited_backend().LimitedKeyring()
    backend.set_password("gatekey", "ok", "a" * 1280)  # exactly 2560 bytes
    assert backend.get_password("gatekey", "ok") == "a" * 1280
    with pytest.raises(Exception, match="bad data") as info:
        backend.set_password("gatekey", "raw", "a" * 3000)  # what gatekey must never send
    assert getattr(info.value, "winerror", None) == 1783
    with pytest.raises(Exception, match="bad data"):
        backend.set_password("gatekey", "raw", "€" * 1281)  # 1281 UTF-16 units
    assert backend.get_password("gatekey", "raw") is None
