"""gatekey: credential helpers for Claude behind an LLM gateway. Imports nothing (hot path)."""

__version__ = "0.1.0"
