"""`gatekey status`: one row per profile, never a secret."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.blackbox


def test_status_reports_each_profile_without_secrets(gk):
    gk.write_config(
        gk.counting_profile("cmd")
        + '\n[profiles.kc]\nsource = "keychain"\n'
        + '\n[profiles.broken]\nsource = "command"\ncomand = ["x"]\n'
    )
    assert gk.run("get", "-p", "cmd", TOKEN="tok-status-secret-value").code == 0

    # A config mistake is an error (exit 78, on stderr), after the table (issue 14, item 12).
    table = gk.run("status")
    assert table.code == 78, table.err
    lines = table.out.splitlines()
    assert lines[0].split()[:3] == ["PROFILE", "SOURCE", "STATE"]
    rows = {line.split()[0]: line for line in lines[1 : lines.index("")]}
    assert set(rows) == {"broken", "cmd", "kc"}
    assert "fresh" in rows["cmd"]
    assert "119 min" in rows["cmd"] or "120 min" in rows["cmd"]
    assert "config error" in rows["broken"]
    assert "keychain" in rows["kc"]
    assert 'profile "broken": key "comand"' in table.err

    as_json = gk.run("status", "--json")
    assert as_json.code == 78, as_json.err
    data = {row["profile"]: row for row in json.loads(as_json.stdout)["profiles"]}
    assert data["cmd"]["state"] == "fresh"
    assert data["cmd"]["source"] == "command"
    assert data["kc"]["state"] == "unknown"  # no Secret Service here to ask
    assert "comand" in data["broken"]["error"]  # the config error, named

    for result in (table, as_json):
        assert b"tok-status-secret-value" not in result.stdout + result.stderr
        assert b"tok-stat" not in result.stdout + result.stderr


def test_status_after_the_cache_is_damaged_reads_none(gk):
    gk.write_config(gk.counting_profile("cmd"))
    assert gk.run().code == 0
    gk.entry_path().write_text("{not json")
    data = json.loads(gk.run("status", "--json").stdout)["profiles"][0]
    assert (data["profile"], data["state"]) == ("cmd", "none")
