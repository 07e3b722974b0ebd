"""The parsers `gatekey check --surface` judges the sibling helpers' stdout with
(helpers/gatekey/diagnostics/check_shapes.py): the cases the black-box fakes do not print."""

from __future__ import annotations

import pytest

from gatekey.diagnostics.check_judge import Judgement
from gatekey.diagnostics.check_shapes import (
    judge_git_credential,
    judge_headers,
    judge_key,
    prompted,
)


def judged(parse: object, data: bytes) -> Judgement:
    j = Judgement()
    parse(data, j)  # type: ignore[operator]
    return j


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b'{"Authorization": "Bearer a1b2c3d4e5", "authorization": "x"}\n', "more than once"),
        (b'{"X-Token": "a\\r\\nInjected: 1"}', "no line breaks or controls (X-Token)"),
        (b'{"X-Token": "caf\\u00e9-secret"}', "visible ASCII"),
        (b'{"Authorization": "Bearer abcdefgh"}\nlog line', "extra output after the JSON object"),
        (b"[1, 2]", "a JSON array"),
        (b'{"X-Org": ["a"]}', "nested values: X-Org: array"),
    ],
)
def test_headers_breaches(data: bytes, problem: str) -> None:
    j = judged(judge_headers, data)
    assert problem in " ".join(j.problems), j.problems


def test_headers_secrets_are_the_credential_parts() -> None:
    j = judged(judge_headers, b'{"Authorization": "Bearer s3cr3t-value-1", "X-Route": "eu-1"}')
    assert j.problems == []
    assert j.payload is not None
    assert j.payload.secrets == ["s3cr3t-value-1"]  # not "Bearer ...", not the route
    assert j.payload.names == ["Authorization", "X-Route"]


def test_headers_without_a_credential_header_warn_and_guard_every_long_value() -> None:
    j = judged(judge_headers, b'{"X-Corp-Pass": "longvalue-123456", "X-Route": "eu"}')
    assert j.problems == []
    assert "no header carries a credential" in " ".join(j.warnings)
    assert j.payload is not None
    assert j.payload.secrets == ["longvalue-123456"]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"username=a\npassword=p4ss-w0rd\n\nextra=1\n", "after a blank line"),
        (b"username=a\nusername=b\npassword=p4ss-w0rd\n", "username= given twice"),
        (b"password=\n", "no password= line with a value"),
        (b"password=has space\n", "whitespace or control characters in the password"),
    ],
)
def test_git_credential_breaches(data: bytes, problem: str) -> None:
    j = judged(judge_git_credential, data)
    assert problem in " ".join(j.problems), j.problems


def test_git_credential_bare_token_with_padding_is_a_token() -> None:
    """A base64 token ending in '=' is not a key=value line."""
    j = judged(judge_git_credential, b"c2VjcmV0LXRva2Vu==\n")
    assert j.problems == []
    assert j.payload is not None
    assert j.payload.kind == "token"


def test_git_credential_unknown_keys_and_missing_username_warn() -> None:
    j = judged(judge_git_credential, b"password=p4ss-w0rd\nflavour=x\n")
    assert j.problems == []
    assert "flavour" in " ".join(j.warnings)
    assert "no username= line" in " ".join(j.warnings)


def test_key_outside_rfc6750_warns_and_non_ascii_fails() -> None:
    j = judged(judge_key, b"key:with:colons\n")
    assert j.problems == []
    assert "RFC 6750" in " ".join(j.warnings)
    j = judged(judge_key, "k\u00e9y-123456\n".encode())
    assert "non-ASCII" in " ".join(j.problems)


@pytest.mark.parametrize(
    "stderr",
    [
        "To sign in, open https://idp.example/device and enter the code ABCD-EFGH\n",
        "Password: ",
        "Passphrase for key /home/a/.ssh/id:\n",
        "Continue? (y/n)",
        "Press Enter to open your browser\n",
    ],
)
def test_prompts_are_recognised(stderr: str) -> None:
    assert prompted(stderr) is not None


@pytest.mark.parametrize(
    "stderr",
    [
        "",
        "gatekey: profile work: interaction required; run: gatekey login -p work\n",
        "gatekey: could not open https://idp.example/.well-known/openid-configuration: timeout\n",
        "warning: token expires soon\n",
    ],
)
def test_ordinary_errors_are_not_prompts(stderr: str) -> None:
    assert prompted(stderr) is None
