"""`gatekey check`'s judge, in process: what it makes of a helper's stdout and stderr (the runs
of the installed executable are in tests/blackbox/commands/test_check.py)."""

from __future__ import annotations

import pytest

from gatekey.diagnostics import check_judge as chk


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        (b"tok-123456\n", "token"),
        (b"tok-123456", "token"),
        (b"tok-123456\r\n", "token"),
        (b'{"token": "tok-123456", "headers": {"X-A": "b"}}\n', "json"),
        (b'{"token": "tok-123456"}', "json"),
        (b'{\n  "token": "tok-123456",\n  "headers": {}\n}\n', "json"),
        (b"Welcome!\ntok-123456\n", chk.BANNER),
        (b'Signing in...\n{\n  "token": "tok-123456"\n}\n', chk.BANNER),
        (b"tok-123456\ninfo: refreshed ok\n", chk.AFTER),
        (b"tok-123456\n\n", chk.NOT_PAYLOAD),
        (b" tok-123456\n", chk.NOT_PAYLOAD),
        (b"Bearer tok-123456\n", chk.NOT_PAYLOAD),
        (b"\xfftok\n", chk.NOT_PAYLOAD),
        (b'{"token": 5}\n', chk.NOT_PAYLOAD),
        (b'{"token": "tok-123456"\n', chk.NOT_PAYLOAD),
        (b'{"token": "tok-123456", "headers": {"X-A": null}}', chk.HEADER_TYPES),
        (b'{"token": "tok-123456", "headers": ["X-A"]}', chk.HEADER_TYPES),
        (b"\n", chk.EMPTY),
        (b"", chk.EMPTY),
    ],
)
def test_judge_stdout(stdout: bytes, expected: str) -> None:
    j = chk.Judgement()
    chk.judge_stdout(stdout, j)
    if expected in ("token", "json"):
        assert j.problems == []
        assert j.payload is not None
        assert j.payload.kind == expected
        assert j.payload.token == "tok-123456"
    else:
        assert j.problems, stdout
        assert j.problems[0].startswith(expected), j.problems


def test_judge_warns_on_ignored_json_keys() -> None:
    j = chk.Judgement()
    chk.judge_stdout(b'{"token": "tok-123456", "expires_in": 3600}\n', j)
    assert j.problems == []
    assert j.warnings == ["JSON keys the app ignores: expires_in"]


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        ("ok, refreshed\n", None),
        ("got tok+0123456789/abcdef\n", chk.ECHOED),
        ("url: ?t=tok%2B0123456789%2Fabcdef\n", f"{chk.ECHOED} (URL-encoded)"),
        ("basic dG9rKzAxMjM0NTY3ODkvYWJjZGVm\n", f"{chk.ECHOED} (base64)"),
        ("prefix: tok+01234567...\n", chk.ECHOED_PART),
    ],
)
def test_leaks(stderr: str, expected: str | None) -> None:
    assert chk.leaks("tok+0123456789/abcdef", stderr) == expected
