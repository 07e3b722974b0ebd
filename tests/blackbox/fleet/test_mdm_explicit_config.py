"""`gatekey mdm --config FILE`: the managed configuration depends on the fleet's config and the
command line alone, and stderr names the profile and the origin of every default number; a
gateway URL ending in /v1 is warned about. Black-box runs of the installed executable."""

from __future__ import annotations

import json
import plistlib
from pathlib import Path

import pytest

from blackbox_env import Env

pytestmark = pytest.mark.blackbox

URL = "https://llm-gw.example.com"
HELPER = "/opt/gatekey/bin/gatekey"
TIMEOUT_KEY = "inferenceCredentialHelperTimeoutSec"
TTL_KEY = "inferenceCredentialHelperTtlSec"
CMD = 'source = "command"\ncommand = ["/bin/echo", "tok"]\nallow_insecure_cache = true\n'
FLEET = (
    'default_profile = "fleet"\n'
    '[timeouts]\nsilent = "20s"\n'
    f'[profiles.fleet]\n{CMD}min_ttl = "50m"\n'
    '[profiles.corp]\nsource = "oidc"\nissuer = "https://idp.example.com/x"\nclient_id = "abc"\n'
)
# What an admin's own machine may hold: other numbers, another default, another profile.
PERSONAL = (
    'default_profile = "mine"\n[timeouts]\nsilent = "{silent}"\ninteractive = "300s"\n'
    f'[profiles.mine]\n{CMD}min_ttl = "2h"\n'
    f'[profiles.fleet]\n{CMD}min_ttl = "3h"\nauth_scheme = "x-api-key"\n'
)


def fleet_file(tmp_path: Path, text: str = FLEET) -> Path:
    path = tmp_path / "fleet" / "config.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def linux_json(gk: Env, *args: str, **env: str) -> tuple[dict[str, str], str]:
    r = gk.run(
        "mdm", "--format", "linux-json", "--gateway-url", URL, "--helper", HELPER, *args, **env
    )
    assert r.code == 0, r.err
    return json.loads(r.stdout), r.err


def test_config_file_alone_decides_the_values(gk: Env, tmp_path: Path) -> None:
    """The same command gives the same file whatever the admin's own config, this machine's
    system config or GATEKEY_PROFILE say (before: 25, 20 or 120 s depending on them)."""
    fleet = fleet_file(tmp_path)
    outputs = []
    for silent in ("5s", "105s"):
        gk.write_config(PERSONAL.format(silent=silent))
        for extra in ({}, {"GATEKEY_PROFILE": "mine"}):
            values, _ = linux_json(gk, "--config", str(fleet), **extra)
            outputs.append(values)
    system = Path(gk.vars["GATEKEY_MANAGED_CONFIG"])  # stands in for /etc/gatekey/config.toml
    system.write_text('[timeouts]\nsilent = "60s"\n[profiles.fleet]\nmin_ttl = "4h"\n')
    system.chmod(0o644)
    outputs.append(linux_json(gk, "--config", str(fleet))[0])
    assert all(values == outputs[0] for values in outputs), outputs
    assert outputs[0][TTL_KEY] == str(50 * 60 - 300)  # the fleet's min_ttl, less 5 minutes
    assert outputs[0][TIMEOUT_KEY] == "35"  # the fleet's silent 20 s + 15 s
    assert outputs[0]["inferenceGatewayAuthScheme"] == "bearer"
    # Without --config the same machine gives other numbers: that is what --config is for.
    values, _ = linux_json(gk)
    assert values[TIMEOUT_KEY] != outputs[0][TIMEOUT_KEY]


def test_stderr_names_the_profile_and_where_each_number_came_from(gk: Env, tmp_path: Path) -> None:
    fleet = fleet_file(tmp_path)
    gk.write_config(PERSONAL.format(silent="5s"))
    _, err = linux_json(gk, "--config", str(fleet), GATEKEY_PROFILE="mine")
    assert f'profile "fleet" (default_profile) of --config {fleet}' in err
    assert "TTL 2700 = min_ttl 3000 s (set in " + str(fleet) + ") - 300 s" in err
    assert f"timeout 35 = [timeouts] silent 20 s (set in {fleet}) + 15 s" in err
    assert "auth scheme bearer = auth_scheme (built-in default)" in err
    assert str(gk.config_path) not in err  # the admin's own config played no part
    # A profile a person signs in with takes [timeouts] interactive, and says so.
    values, err = linux_json(gk, "--config", str(fleet), "-p", "corp")
    assert values[TIMEOUT_KEY] == "120"
    assert 'profile "corp" (-p)' in err
    assert "timeout 120 = [timeouts] interactive 120 s (built-in default)" in err
    assert "sign in" in err
    assert "TTL 3600 = min_ttl 3900 s (built-in default) - 300 s" in err


def test_without_config_it_says_which_files_and_profile(gk: Env, tmp_path: Path) -> None:
    """Without --config the machine's own config is used, and stderr says so and how to avoid
    it; the profile chosen by GATEKEY_PROFILE is named as such."""
    gk.write_config(PERSONAL.format(silent="5s"))
    values, err = linux_json(gk)
    assert values[TIMEOUT_KEY] == "20"  # the personal silent 5 s + 15 s
    assert f'profile "mine" (default_profile) of this machine\'s config {gk.config_path}' in err
    assert f"timeout 20 = [timeouts] silent 5 s (set in {gk.config_path}) + 15 s" in err
    assert "--config FILE" in err
    _, err = linux_json(gk, GATEKEY_PROFILE="fleet")
    assert 'profile "fleet" (GATEKEY_PROFILE)' in err
    # Every value given on the command line: the profile still bounds them, and is named.
    _, err = linux_json(
        gk, "-p", "mine", "--ttl", "1800", "--timeout", "60", "--auth-scheme", "bearer"
    )
    assert f'checked against profile "mine" (-p) of this machine\'s config {gk.config_path}' in err


def test_gatekey_config_from_the_config_file(gk: Env, tmp_path: Path) -> None:
    fleet = fleet_file(tmp_path)
    gk.write_config(PERSONAL.format(silent="5s"))
    r = gk.run("mdm", "--gatekey-config", "--config", str(fleet), GATEKEY_PROFILE="mine")
    assert r.code == 0, r.err
    assert 'default_profile = "fleet"' in r.out
    assert 'silent = "20s"' in r.out
    assert 'min_ttl = "3000s"' in r.out  # the fleet's, not the personal "3h" for the same name
    assert "[profiles.mine]" not in r.out
    assert f'profile "fleet" (default_profile) of --config {fleet}' in r.err


def test_config_file_problems(gk: Env, tmp_path: Path) -> None:
    args = ("mdm", "--format", "linux-json", "--gateway-url", URL, "--helper", HELPER)
    r = gk.run(*args, "--config", str(tmp_path / "missing.toml"))
    assert r.code == 2, r.err  # a usage error: the option names a file that is not there
    assert "--config" in r.err
    assert r.stdout == b""
    bad = fleet_file(tmp_path, "[profiles.fleet]\nsource = 'command'\ncomand = ['x']\n")
    r = gk.run(*args, "--config", str(bad))
    r.assert_clean_failure(78)
    assert str(bad) in r.err
    assert "comand" in r.err
    # An admin's draft is not held to the installed system file's ownership rules.
    shared = fleet_file(tmp_path)
    shared.chmod(0o664)
    assert gk.run(*args, "--config", str(shared)).code == 0


@pytest.mark.parametrize(
    ("url", "suggested"),
    [
        (URL + "/v1", URL),
        (URL + "/v1/", URL),
        (URL + "/litellm/V1", URL + "/litellm"),
        (URL + "/v1/messages", URL),
    ],
)
def test_base_url_ending_in_v1_warns(gk: Env, url: str, suggested: str) -> None:
    """The app appends /v1/messages and /v1/models: a base ending in /v1 means /v1/v1/... (and
    doctor blaming the audience). Warned on stderr, exit 0, the value kept as given."""
    r = gk.run("mdm", "--format", "linux-json", "--gateway-url", url, "--helper", HELPER)
    assert r.code == 0, r.err
    assert json.loads(r.stdout)["inferenceGatewayBaseUrl"] == url.rstrip("/")
    [line] = [line for line in r.err.splitlines() if line.startswith("gatekey: warning:")]
    assert "--gateway-url" in line
    assert url.rstrip("/") + "/v1/messages" in line
    assert line.endswith(f"give --gateway-url {suggested}")


@pytest.mark.parametrize("url", [URL, URL + "/v10", URL + "/api/v1beta", URL + "/gw"])
def test_other_base_urls_are_not_warned_about(gk: Env, url: str) -> None:
    r = gk.run("mdm", "--format", "mobileconfig", "--gateway-url", url, "--helper", HELPER)
    assert r.code == 0, r.err
    assert plistlib.loads(r.stdout)["PayloadContent"][0]["inferenceGatewayBaseUrl"] == url
    assert "warning" not in r.err
