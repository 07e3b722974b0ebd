"""Errors with a next step, as the installed executable prints them: byte-for-byte the lines
(and doctor's checks) gatekey printed before the step became a field (HelperError.fix). These
tests pass against the code before that change too; they pin that nothing moved."""

from __future__ import annotations

import json
import re

from gatekey.sources.onepassword import INSTALL_URL

MISSING = "/nonexistent/gatekey-test-command"


def line(result_err: str) -> str:
    lines = result_err.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_a_missing_command_prints_its_step_and_then_the_remembered_retry(gk):
    gk.write_config(f'[profiles.cmd]\nsource = "command"\ncommand = ["{MISSING}"]\n')
    first = gk.run(context="background")
    first.assert_clean_failure(69)
    assert line(first.err) == (
        f'gatekey: profile "cmd": command not found: {MISSING}; install it or give its '
        "absolute path"
    )
    again = gk.run(context="background")
    again.assert_clean_failure(69)
    pattern = (
        re.escape(f'gatekey: profile "cmd": command not found: {MISSING}; install it or give its ')
        + r"absolute path; not asking again until \d\d:\d\d:\d\dZ \(in \d+ s\) to spare the "
        + re.escape("source; to retry now, run: gatekey get -p cmd --force-refresh")
    )
    assert re.fullmatch(pattern, line(again.err)), again.err


def test_a_missing_op_is_worded_by_the_onepassword_source(gk):
    gk.write_config(
        '[profiles.op]\nsource = "onepassword"\nreference = "op://Eng/LiteLLM/credential"\n'
        'op_path = "/nonexistent/op"\n'
    )
    result = gk.run(context="background")
    result.assert_clean_failure(69)
    assert line(result.err) == (
        'gatekey: profile "op": the 1Password CLI (/nonexistent/op) is not installed or not on '
        f"PATH; install it ({INSTALL_URL}) or set op_path"
    )


def test_doctor_shows_an_unreachable_vaults_step_and_its_remembered_wait(gk):
    """Port 1 on the loopback: nothing listens there, so the connection is refused at once."""
    gk.write_config(
        '[profiles.v]\nsource = "vault"\naddress = "http://127.0.0.1:1"\n'
        'path = "secret/data/llm"\nfield = "key"\n'
    )
    failed = gk.run(context="background", VAULT_TOKEN="hvs.not-a-real-token")
    failed.assert_clean_failure(75)
    assert re.fullmatch(
        r'gatekey: profile "v": cannot reach 127\.0\.0\.1:1 \([^;]*\); check the network or VPN',
        line(failed.err),
    ), failed.err
    doctor = gk.run("doctor", "-p", "v", "--json", VAULT_TOKEN="hvs.not-a-real-token")
    assert doctor.code == 1, doctor.err
    checks = {c["check"]: c for c in json.loads(doctor.stdout)["checks"]}
    reached = re.compile(r"cannot reach 127\.0\.0\.1:1 \([^;]*\)")
    assert reached.fullmatch(checks["source"]["detail"]), checks["source"]
    assert checks["source"]["fixes"] == ["check the network or VPN"]
    assert reached.fullmatch(checks["token"]["detail"]), checks["token"]
    [step] = checks["token"]["fixes"]
    assert re.fullmatch(
        r"check the network or VPN; not asking again until \d\d:\d\d:\d\dZ \(in \d+ s\) to "
        r"spare the source; to retry now, run: gatekey get -p v --force-refresh; then retry: "
        r"gatekey get -p v --force-refresh",
        step,
    ), step
