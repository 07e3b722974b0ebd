"""TOML text of a minimal profile of a kind, for config tests: ``[profiles.NAME]`` and its keys."""

from __future__ import annotations


def command_profile(name: str, extra: str = "") -> str:
    return f'[profiles.{name}]\nsource = "command"\ncommand = ["tool", "print-token"]\n{extra}\n'


def keychain_profile(name: str, extra: str = "") -> str:
    return f'[profiles.{name}]\nsource = "keychain"\n{extra}\n'
