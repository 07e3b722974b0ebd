"""Doctor's rules, in process (diagnostics/advice.py, diagnostics/claude_settings.py): clock skew,
a token lifetime against Claude's TTL, and reading Claude's managed settings. `gatekey doctor`
on the installed executable: tests/blackbox/commands/test_doctor.py."""

from __future__ import annotations

from pathlib import Path

# Claude's managed settings (the app's documented keys)
TTL_KEY = "inferenceCredentialHelperTtlSec"
TIMEOUT_KEY = "inferenceCredentialHelperTimeoutSec"


def test_clock_skew_thresholds():
    from gatekey.diagnostics import advice

    assert advice.clock(1.5, "idp").verdict == "ok"
    assert advice.clock(-59, "idp").verdict == "ok"
    warn = advice.clock(-61, "idp")
    assert (warn.verdict, "behind idp" in warn.detail) == ("warn", True)
    fail = advice.clock(301, "idp")
    assert (fail.verdict, "ahead of idp" in fail.detail) == ("fail", True)
    assert fail.fixes
    assert "network time" in fail.fixes[0]


def test_short_lived_tokens_cannot_fit_any_ttl():
    from gatekey.diagnostics import advice

    found = advice.ttl(
        ttl=3600, timeout=60, lifetime=400, known=True, min_ttl=3900, silent=10,
        interactive=None, profile="p",
    )  # fmt: skip
    assert [f.verdict for f in found] == ["fail"]
    assert found[0].fixes
    assert "at least 3900 s" in found[0].fixes[0]


def test_a_macos_preferences_plist_is_read(tmp_path: Path):
    import plistlib

    from gatekey.diagnostics import claude_settings as settings

    path = tmp_path / "com.anthropic.claudefordesktop.plist"
    path.write_bytes(plistlib.dumps({TTL_KEY: "1800", TIMEOUT_KEY: 180, "other": "x"}))
    read = settings.read_file(str(path), [str(path)])
    assert read.values == {TTL_KEY: "1800", TIMEOUT_KEY: "180"}
    assert (read.where, read.problem) == (str(path), None)
