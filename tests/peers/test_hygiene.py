"""The suite-wide secret-hygiene check itself (support/hygiene.py): it records, and it catches.

A check that could not fail would prove nothing: these tests plant each kind of leak and
require a finding, and show that the recording is live in every test.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from urllib.parse import quote

import pytest

import hygiene
from blackbox_env import Env
from hygiene import Recorder, Run

SECRET = "s3cr3t+value/with=odd&chars-0123456789"
GATEKEY = "/opt/gatekey/bin/gatekey"


def run(*args: str, code: int = 0, stdout: bytes = b"", stderr: bytes = b"", **env: str) -> Run:
    return Run([GATEKEY, *args], dict(env) or None, None, stdout, stderr, code)


def findings_for(*runs: Run, extra: Recorder | None = None) -> list[str]:
    recorder = extra or Recorder()
    recorder.runs.extend(runs)
    recorder.register(SECRET, "test")
    return recorder.findings()


@pytest.mark.parametrize("prefix", ["", "a", "ab", "abc", "abcd", "Bearer "])
def test_base64_of_a_secret_inside_other_data_is_found(prefix: str) -> None:
    blob = (prefix + SECRET + " trailing").encode()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        stderr = b"debug: " + encode(blob)
        assert findings_for(run("get", code=75, stderr=stderr)), (prefix, encode)


def test_each_place_and_form_is_found(tmp_path: Path) -> None:
    cases = {
        "stderr": run(stderr=f"gatekey: oops {SECRET}\n".encode()),
        "stdout on failure": run(code=1, stdout=SECRET.encode()),
        "stdout of a non-payload command": run("status", stdout=quote(SECRET, safe="").encode()),
        "argv": run("get", "--token", SECRET),
    }
    for place, leak in cases.items():
        found = findings_for(leak)
        assert found, place
        assert all("sha256" in f and SECRET not in f for f in found), found  # never the value
    log = tmp_path / "runs.jsonl"
    log.write_text(json.dumps({"message": SECRET}) + "\n")
    recorder = Recorder()
    recorder.extra_logs.append(log)
    assert findings_for(extra=recorder)
    argv_log = tmp_path / "argv.log"
    argv_log.write_bytes(b"/usr/bin/op\0read\0" + SECRET.encode() + b"\n")
    assert findings_for(run(**{hygiene.ARGV_LOG: str(argv_log)}))


def test_a_payload_may_hold_the_secret_and_registers_it() -> None:
    payload = json.dumps({"token": "tok-abcdefgh", "headers": {"X-Key": "hdr-secret-1"}})
    recorder = Recorder()
    recorder.runs += [run(stdout=payload.encode() + b"\n"), run("get", stdout=b"other-token-1\n")]
    recorder.runs.append(run("status", stderr=b"gatekey: hdr-secret-1 leaked\n"))
    found = recorder.findings()
    assert set(recorder.secrets) >= {"tok-abcdefgh", "hdr-secret-1", "other-token-1"}
    assert len(found) == 1
    assert "stderr of run 3" in found[0]


def test_secret_environment_values_and_store_input_are_registered() -> None:
    recorder = Recorder()
    recorder.runs += [
        run(CONF_SECRET="client-secret-1", VAULT_TOKEN="hvs.vault-token", SSL_CERT_FILE="/x"),
        Run([GATEKEY, "store", "-p", "k"], None, b"keychain-value-1", b"", b"", 0),
    ]
    recorder.findings()
    assert set(recorder.secrets) == {"client-secret-1", "hvs.vault-token", "keychain-value-1"}


def test_a_secret_the_config_passes_to_its_own_command_is_not_a_leak(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[profiles.p]\nsource = "command"\ncommand = ["echo", "{SECRET}"]\n')
    argv_log = tmp_path / "argv.log"
    argv_log.write_bytes(b"echo\0" + SECRET.encode() + b"\n")
    env = {hygiene.ARGV_LOG: str(argv_log), "GATEKEY_CONFIG": str(config)}
    assert findings_for(run(**env)) == []
    assert findings_for(run(stderr=SECRET.encode(), **env))  # still a leak anywhere else


def test_the_recording_is_live_in_every_test(
    gk: Env, secret_hygiene: Recorder, tmp_path: Path
) -> None:
    gk.write_config(gk.counting_profile())
    r = gk.run(context="background", TOKEN="live-token-0123")
    assert r.code == 0, r.err
    recorded = secret_hygiene.runs[-1]
    assert recorded.is_gatekey
    assert recorded.payload_ok
    assert recorded.stdout == b"live-token-0123\n"
    # gatekey and the counting source (its child) both wrote their argv.
    argv_log = Path(gk.vars[hygiene.ARGV_LOG]).read_bytes()
    assert b"counting_source.py" in argv_log
    assert os.path.basename(recorded.argv[0]).encode() in argv_log
