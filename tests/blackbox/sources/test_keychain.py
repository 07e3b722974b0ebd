"""The keychain source: the real Secret Service, a limit-enforcing backend, and chunking.

Two layers (keystore's chunking in process: tests/unit/test_keystore_chunks.py):
- the installed executables against a backend that enforces Windows Credential Manager's
  2560-byte limit (tests/support/limited_backend.py), for chunking and crash safety;
- the installed executables against the real Secret Service (gnome-keyring on a private D-Bus,
  the `secret_service` fixture), with secret-tool and keyring's own CLI as the peers it must
  interoperate with. No mocked keyring anywhere: the daemon is the point.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from blackbox_env import BIN, CONTEXTS, SILENT_CONTEXTS, Env
from gatekey import keystore
from gatekey.keystore import MANIFEST_PREFIX, split_chunks

pytestmark = pytest.mark.keychain
blackbox = pytest.mark.blackbox

SECRET = "sk-gk-Zq7vWmX2pL9sT4uR8yB3nC6dF1hJ0kQe"  # distinctive: any fragment of it is a leak
SECRET_SERVICE_BACKEND = "keyring.backends.SecretService.Keyring"


def leaked(secret: str, text: bytes | str) -> bool:
    """Whether any 8-character piece of the secret's body shows up in ``text``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    body = secret[6:] if secret.startswith("sk-gk-") else secret
    return any(body[i : i + 8] in text for i in range(max(len(body) - 7, 1)))


# ============================================================================================
# The limit-enforcing backend (tests/support/limited_backend.py), through the installed CLI
# ============================================================================================
LIMITED_CONFIG = """\
default_profile = "win"

[profiles.win]
source = "keychain"
backend = "limited_backend.LimitedKeyring"
allow_insecure_backend = true

[profiles.plain]
source = "keychain"
backend = "limited_backend.LimitedKeyring"
"""


@pytest.fixture
def limited(gk: Env) -> Env:
    gk.write_config(LIMITED_CONFIG)
    gk.vars["LIMITED_KEYRING_FILE"] = str(gk.root / "limited-keyring.json")
    return gk


def entries(env: Env) -> dict[str, str]:
    path = Path(env.vars["LIMITED_KEYRING_FILE"])
    return json.loads(path.read_text()) if path.exists() else {}


def chunk_entries(env: Env) -> list[str]:
    return sorted(k for k in entries(env) if "#gatekey-chunk-" in k)


@blackbox
def test_limited_backend_refuses_a_raw_3000_char_value_through_keyring_itself(limited):
    # The same backend, used by keyring's own CLI with no chunking: the write fails.
    keyring_set = ["-m", "keyring", "-b", "limited_backend.LimitedKeyring", "set", "gatekey", "raw"]
    proc = subprocess.run(
        [str(BIN / "python"), *keyring_set],
        input=b"a" * 3000,
        capture_output=True,
        env=limited.vars,
        timeout=60,
    )
    assert proc.returncode != 0
    assert b"bad data" in proc.stderr
    assert entries(limited) == {}


@blackbox
@pytest.mark.parametrize(
    "value",
    [
        "eyJ" + "Q" * 5997,  # 6000 characters, 12000 bytes in UTF-16
        MANIFEST_PREFIX + '{"gen":"deadbeef","n":1,"sha256":"0"}',
    ],
    ids=["6000-ascii", "looks-like-a-manifest"],
)
def test_large_values_store_and_read_back_exactly_through_the_limit(limited, value):
    stored = limited.run("store", stdin=value.encode())
    assert stored.code == 0, stored.err
    for name in ("gatekey", "gatekey-keychain"):
        printed = limited.run(exe_name=name, context="background")
        assert printed.code == 0, printed.err
        assert printed.stdout == value.encode() + b"\n"
        assert printed.stderr == b""
    for key, blob in entries(limited).items():
        assert len(blob.encode("utf-16-le")) <= 2560, key


@blackbox
@pytest.mark.parametrize("mode", ["raise", "exit"])
@pytest.mark.parametrize("previous", ["none", "small", "large"])
def test_a_crash_mid_way_through_a_chunked_write_never_yields_a_partial_value(
    limited, previous, mode
):
    old = {"none": None, "small": "sk-old-small-value", "large": "o" * 4000}[previous]
    if old is not None:
        assert limited.run("store", stdin=old.encode()).code == 0
    main_before = entries(limited).get("gatekey\x00win")
    new = "eyJ" + "N" * 5997
    writes_needed = len(split_chunks(new)) + 1  # chunks, then the manifest last
    fail_points = range(writes_needed) if mode == "raise" else (0, writes_needed // 2)
    fail_points = sorted({*fail_points, writes_needed - 1})
    for fail_after in fail_points:
        crashed = limited.run(
            "store",
            stdin=new.encode(),
            LIMITED_KEYRING_FAIL_AFTER=str(fail_after),
            LIMITED_KEYRING_FAIL_MODE=mode,
        )
        assert crashed.code != 0, f"the write after {fail_after} should have failed"
        assert not leaked(new, crashed.stderr)
        assert entries(limited).get("gatekey\x00win") == main_before
        printed = limited.run()
        if old is None:
            printed.assert_clean_failure(3)
        else:
            assert printed.code == 0, printed.err
            assert printed.stdout == old.encode() + b"\n", f"after a crash at {fail_after}"
    # Sanity: the fail points cover every write, since allowing them all succeeds.
    done = limited.run("store", stdin=new.encode(), LIMITED_KEYRING_FAIL_AFTER=str(writes_needed))
    assert done.code == 0, done.err
    assert limited.run().stdout == new.encode() + b"\n"


@blackbox
def test_erase_removes_the_chunks_too(limited):
    assert limited.run("store", stdin=b"x" * 6000).code == 0
    assert len(chunk_entries(limited)) == len(split_chunks("x" * 6000))
    erased = limited.run("erase")
    assert erased.code == 0, erased.err
    assert entries(limited) == {}
    limited.run().assert_clean_failure(3)


@blackbox
def test_overwriting_a_chunked_value_drops_its_old_chunks(limited):
    assert limited.run("store", stdin=b"x" * 6000).code == 0
    first = chunk_entries(limited)
    assert limited.run("store", stdin=b"y" * 3000).code == 0
    second = chunk_entries(limited)
    assert second, "3000 characters need chunks"
    assert not set(first) & set(second), "old-generation chunks must be removed"
    assert len(second) == len(split_chunks("y" * 3000))
    assert limited.run("store", stdin=b"sk-small").code == 0
    assert entries(limited) == {"gatekey\x00win": "sk-small"}
    assert limited.run().stdout == b"sk-small\n"


@blackbox
@pytest.mark.parametrize("args", [(), ("get", "-p", "plain"), ("store", "-p", "plain")])
def test_a_plaintext_backend_without_opt_in_is_refused_as_a_config_error(limited, args):
    limited.vars["GATEKEY_PROFILE"] = "plain"
    result = limited.run(*args, stdin=b"sk-would-be-stored" if "store" in args else None)
    result.assert_clean_failure(78)
    assert 'key "backend"' in result.err
    assert 'profile "plain"' in result.err
    assert str(limited.config_path) in result.err
    assert "allow_insecure_backend" in result.err
    assert entries(limited) == {}, "nothing may be written to a refused backend"


@blackbox
def test_a_backend_that_cannot_be_loaded_is_reported_not_a_traceback(gk):
    gk.write_config(
        '[profiles.x]\nsource = "keychain"\nbackend = "no_such_module.Keyring"\n'
        "allow_insecure_backend = true\n"
    )
    result = gk.run()
    result.assert_clean_failure(69)
    assert "no_such_module.Keyring" in result.err


# ============================================================================================
# The real Secret Service (gnome-keyring on a private D-Bus)
# ============================================================================================
def sh(env: Env, argv: list[str], stdin: bytes | None = None, **extra: str):
    return subprocess.run(
        argv,
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        env=dict(env.vars, **extra),
        timeout=60,
    )


def secret_tool_lookup(env: Env, service: str = "gatekey", account: str = "default"):
    return sh(env, ["secret-tool", "lookup", "service", service, "username", account])


def keyring_cli(env: Env, *args: str, stdin: bytes | None = None):
    return sh(
        env,
        [str(BIN / "python"), "-m", "keyring", *args],
        stdin=stdin,
        PYTHON_KEYRING_BACKEND=SECRET_SERVICE_BACKEND,
    )


@pytest.fixture
def collection(secret_service, monkeypatch):
    """The default collection of the test's Secret Service, through secretstorage."""
    import secretstorage

    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", secret_service.vars["DBUS_SESSION_BUS_ADDRESS"])
    connection = secretstorage.dbus_init()
    yield secretstorage.get_default_collection(connection)
    connection.close()


def items_for(collection, service: str = "gatekey") -> list[dict[str, str]]:
    return [item.get_attributes() for item in collection.search_items({"service": service})]


@blackbox
@pytest.mark.parametrize("exe_name", ["gatekey", "gatekey-keychain"])
def test_store_then_print_byte_exact_in_every_context(secret_service, exe_name):
    gk = secret_service
    stored = gk.run("store", stdin=SECRET.encode())
    assert stored.code == 0, stored.err
    assert not leaked(SECRET, stored.stderr)
    for ctx in (*CONTEXTS, None):
        printed = gk.run(exe_name=exe_name, context=ctx)
        assert printed.code == 0, f"{ctx}: {printed.err}"
        assert printed.stdout == SECRET.encode() + b"\n", ctx
        assert printed.stderr == b"", ctx
        got = gk.run("get", exe_name=exe_name, context=ctx)
        assert got.stdout == SECRET.encode() + b"\n", ctx


@blackbox
def test_a_non_ascii_secret_is_refused_by_store_and_never_printed(secret_service):
    """A credential must be valid HTTP header text (printable ASCII): `store` refuses anything
    else, and a value another tool wrote to the keychain is refused when read, never printed."""
    value = "sk-ünïcødé-€-中文-😀"
    refused = secret_service.run("store", stdin=value.encode())
    refused.assert_clean_failure(1)
    assert "printable ASCII" in refused.err
    assert secret_tool_lookup(secret_service).stdout == b""
    planted = subprocess.run(
        ["secret-tool", "store", "--label=planted", "service", "gatekey", "username", "default"],
        input=value.encode(),
        env=secret_service.vars,
        timeout=60,
        check=True,
    )
    assert planted.returncode == 0
    for ctx in ("background", "interactive"):
        secret_service.run(context=ctx).assert_clean_failure(1)


@blackbox
@pytest.mark.parametrize("stdin", [SECRET.encode() + b"\n", SECRET.encode() + b"\r\n"])
def test_the_trailing_newline_from_echo_is_stripped(secret_service, stdin):
    assert secret_service.run("store", stdin=stdin).code == 0
    assert secret_service.run().stdout == SECRET.encode() + b"\n"
    assert secret_tool_lookup(secret_service).stdout == SECRET.encode()


@blackbox
@pytest.mark.parametrize(
    "stdin", [None, b"", b"\n", b"   \n\t"], ids=["closed", "empty", "newline", "blank"]
)
def test_empty_stdin_is_refused_and_nothing_is_stored(secret_service, stdin):
    gk = secret_service
    result = gk.run("store", stdin=stdin)
    assert result.code != 0
    assert result.stdout == b""
    assert "Traceback" not in result.err
    assert "no secret given" in result.err
    assert "stdin" in result.err
    gk.run().assert_clean_failure(3)


@blackbox
@pytest.mark.parametrize(
    "value",
    [b"sk-inner\nnewline", b"sk-tab\there", b"sk-esc\x1b[0m", b"sk-nul\x00x", b"sk-del\x7fx"],
    ids=["newline", "tab", "escape", "nul", "del"],
)
def test_values_with_control_characters_are_refused(secret_service, value):
    gk = secret_service
    result = gk.run("--debug", "store", stdin=value)
    assert result.code != 0
    assert result.stdout == b""
    assert "control characters" in result.err
    assert value.split(b"-", 1)[1][:4] not in result.stderr
    gk.run().assert_clean_failure(3)
    assert secret_tool_lookup(gk).returncode != 0


@blackbox
def test_non_utf8_and_oversized_stdin_are_refused(secret_service):
    gk = secret_service
    bad = gk.run("store", stdin=b"sk-\xff\xfe-latin1")
    assert bad.code != 0
    assert "UTF-8" in bad.err
    huge = gk.run("store", stdin=b"k" * (64 * 1024 + 1))
    assert huge.code != 0
    assert "64 KiB" in huge.err
    gk.run().assert_clean_failure(3)


@blackbox
def test_store_takes_no_secret_from_argv(secret_service):
    gk = secret_service
    result = gk.run("store", SECRET)
    assert result.code == 2, result.err  # click's usage error
    assert "Usage:" in result.err
    assert result.stdout == b""
    gk.run().assert_clean_failure(3)  # and nothing was stored
    usage = gk.run("store", "--help").out.splitlines()[0]
    assert usage == "Usage: gatekey store [OPTIONS]", usage  # no positional argument at all


@blackbox
def test_a_secret_mistakenly_given_in_argv_is_not_echoed_on_stderr(secret_service):
    result = secret_service.run("store", SECRET)
    assert result.code == 2
    assert not leaked(SECRET, result.stderr), result.err


@blackbox
@pytest.mark.parametrize("flags", [("-v",), ("-vv",), ("--debug",)])
def test_the_secret_never_reaches_stderr_at_any_verbosity(secret_service, flags):
    gk = secret_service
    runs = [
        gk.run(*flags, "store", stdin=SECRET.encode()),
        gk.run(*flags),
        gk.run(*flags, "get", "--format", "json"),
        gk.run(*flags, "get", "--format", "header"),
        gk.run(GATEKEY_LOG_LEVEL="debug"),
        gk.run(*flags, "status"),
        gk.run(*flags, "store", stdin=(SECRET * 200).encode()),  # chunked: more to log
        gk.run(*flags, "get"),
        gk.run(*flags, "erase"),
    ]
    assert [r.code for r in runs] == [0] * len(runs), [r.err for r in runs]
    assert runs[1].stdout == SECRET.encode() + b"\n"
    assert runs[7].stdout == (SECRET * 200).encode() + b"\n"
    if "--debug" in flags or "-vv" in flags:
        assert "debug:" in runs[1].err, "debug logging should be on (or this test proves little)"
    for r in runs:
        assert not leaked(SECRET, r.stderr), (r.argv, r.err)


@blackbox
def test_keychain_values_are_never_copied_into_the_file_cache(secret_service):
    gk = secret_service
    assert gk.run("store", stdin=SECRET.encode()).code == 0
    for ctx in CONTEXTS:
        assert gk.run(context=ctx).code == 0
    assert gk.run("get").code == 0
    for path in [gk.cache_dir, gk.root / "home"]:
        for f in path.rglob("*"):
            if f.is_file() and "keyrings" not in f.parts:  # gnome-keyring's own encrypted file
                assert not leaked(SECRET, f.read_bytes()), f


@blackbox
def test_a_stored_item_is_readable_by_secret_tool_and_keyring(secret_service):
    gk = secret_service
    assert gk.run("store", stdin=SECRET.encode()).code == 0
    looked_up = secret_tool_lookup(gk)
    assert looked_up.returncode == 0, looked_up.stderr
    assert looked_up.stdout == SECRET.encode()
    got = keyring_cli(gk, "get", "gatekey", "default")
    assert got.returncode == 0, got.stderr
    assert got.stdout == SECRET.encode() + b"\n"


@blackbox
def test_a_value_set_by_keyring_is_read_by_gatekey(secret_service):
    gk = secret_service
    setting = keyring_cli(gk, "set", "gatekey", "default", stdin=b"sk-from-keyring-cli\n")
    assert setting.returncode == 0, setting.stderr
    assert gk.run().stdout == b"sk-from-keyring-cli\n"
    # ... and over one gatekey stored (same attributes: keyring replaces it)
    assert gk.run("store", stdin=b"sk-from-gatekey").code == 0
    assert keyring_cli(gk, "set", "gatekey", "default", stdin=b"sk-keyring-again").returncode == 0
    assert gk.run().stdout == b"sk-keyring-again\n"


@blackbox
def test_a_value_set_by_secret_tool_is_read_by_gatekey(secret_service):
    gk = secret_service
    stored = sh(
        gk,
        ["secret-tool", "store", "--label=k", "service", "gatekey", "username", "default"],
        stdin=b"sk-from-secret-tool",
    )
    assert stored.returncode == 0, stored.stderr
    assert gk.run().stdout == b"sk-from-secret-tool\n"
    assert gk.run("get", context="background").stdout == b"sk-from-secret-tool\n"


@blackbox
def test_secret_tool_can_replace_a_value_gatekey_stored(secret_service):
    gk = secret_service
    assert gk.run("store", stdin=b"sk-gatekey-first").code == 0
    stored = sh(
        gk,
        ["secret-tool", "store", "--label=k", "service", "gatekey", "username", "default"],
        stdin=b"sk-secret-tool-second",
    )
    assert stored.returncode == 0
    assert gk.run().stdout == b"sk-secret-tool-second\n"


@blackbox
def test_gatekey_store_replaces_an_item_created_by_secret_tool(secret_service, collection):
    gk = secret_service
    stored = sh(
        gk,
        ["secret-tool", "store", "--label=k", "service", "gatekey", "username", "default"],
        stdin=b"sk-old-from-secret-tool",
    )
    assert stored.returncode == 0
    assert gk.run("store", stdin=b"sk-new-from-gatekey").code == 0
    items_after_store = len(items_for(collection))
    printed = gk.run()
    erased = gk.run("erase")
    after_erase = gk.run()
    assert (items_after_store, printed.stdout, erased.code, after_erase.code) == (
        1,
        b"sk-new-from-gatekey\n",
        0,
        3,
    )


CUSTOM_CONFIG = """\
default_profile = "corp"

[profiles.corp]
source = "keychain"
service = "corp-gateway"
account = "alice@example.com"

[profiles.team]
source = "keychain"
"""


@blackbox
def test_custom_service_and_account_keys(secret_service):
    gk = secret_service
    gk.write_config(CUSTOM_CONFIG)
    assert gk.run("store", stdin=b"sk-corp-key").code == 0  # default_profile: corp
    assert gk.run("store", "-p", "team", stdin=b"sk-team-key").code == 0
    assert secret_tool_lookup(gk, "corp-gateway", "alice@example.com").stdout == b"sk-corp-key"
    # account defaults to the profile name, service to "gatekey"
    assert secret_tool_lookup(gk, "gatekey", "team").stdout == b"sk-team-key"
    assert secret_tool_lookup(gk, "gatekey", "default").returncode != 0

    assert gk.run().stdout == b"sk-corp-key\n"
    assert gk.run(exe_name="gatekey-keychain").stdout == b"sk-corp-key\n"
    assert gk.run(GATEKEY_PROFILE="team").stdout == b"sk-team-key\n"
    assert gk.run("get", "-p", "team").stdout == b"sk-team-key\n"
    got = keyring_cli(gk, "get", "corp-gateway", "alice@example.com")
    assert got.stdout == b"sk-corp-key\n"


@blackbox
@pytest.mark.parametrize("profile", ["default", "corp", "team"])
def test_a_missing_entry_exits_3_naming_the_command_to_run(secret_service, profile):
    gk = secret_service
    if profile != "default":
        gk.write_config(CUSTOM_CONFIG)
    for ctx in (None, "interactive", "background"):
        result = gk.run("get", "-p", profile, context=ctx)
        result.assert_clean_failure(3)
        assert "no credential stored" in result.err
        assert f"gatekey store -p {profile}" in result.err
    result = gk.run(GATEKEY_PROFILE=profile)
    result.assert_clean_failure(3)
    assert f"gatekey store -p {profile}" in result.err


@blackbox
def test_erase_removes_the_item(secret_service):
    gk = secret_service
    assert gk.run("store", stdin=SECRET.encode()).code == 0
    assert gk.run().code == 0
    erased = gk.run("erase")
    assert erased.code == 0, erased.err
    assert "erased the keychain entry" in erased.err
    assert not leaked(SECRET, erased.stderr)
    result = gk.run()
    result.assert_clean_failure(3)
    assert secret_tool_lookup(gk).returncode != 0
    again = gk.run("erase")
    assert again.code == 0
    assert "nothing to erase (nothing stored or cached)" in again.err


@blackbox
def test_large_values_round_trip_through_the_secret_service_in_chunks(secret_service, collection):
    gk = secret_service
    value = "eyJ" + "".join(chr(ord("a") + i % 26) for i in range(8997))  # 9000 characters
    assert gk.run("store", stdin=value.encode()).code == 0
    for ctx in (None, "background", "mid-session-refresh"):
        printed = gk.run(context=ctx)
        assert printed.code == 0, printed.err
        assert printed.stdout == value.encode() + b"\n"

    main = secret_tool_lookup(gk)
    assert main.stdout.startswith(MANIFEST_PREFIX.encode()), main.stdout[:60]
    assert len(main.stdout) < 200
    n_chunks = len(split_chunks(value))
    assert len(items_for(collection)) == 1 + n_chunks

    second = "eyJ" + "Z9" * 5000  # a new value over the old one: the old chunks are gone
    assert gk.run("store", stdin=second.encode()).code == 0
    assert gk.run().stdout == second.encode() + b"\n"
    assert len(items_for(collection)) == 1 + len(split_chunks(second))

    assert gk.run("erase").code == 0
    assert items_for(collection) == []
    gk.run().assert_clean_failure(3)


@blackbox
@pytest.mark.parametrize("command", [(), ("get",), ("store",), ("erase",)])
def test_no_dbus_session_exits_69_naming_the_secret_service_and_a_fix(gk, command):
    assert "DBUS_SESSION_BUS_ADDRESS" not in gk.vars
    result = gk.run(*command, stdin=b"sk-x" if command == ("store",) else None)
    result.assert_clean_failure(69)
    assert "Secret Service" in result.err
    assert "dbus-run-session" in result.err
    assert "gnome-keyring-daemon --unlock" in result.err
    assert "DBUS_SESSION_BUS_ADDRESS is unset" in result.err


@blackbox
def test_an_unreachable_dbus_address_exits_69(gk):
    result = gk.run(DBUS_SESSION_BUS_ADDRESS=f"unix:path={gk.root}/run/no-such-bus")
    result.assert_clean_failure(69)
    assert "set but unreachable" in result.err


BUS_WITHOUT_SERVICES = """\
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={dir}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


@blackbox
def test_a_session_bus_without_a_secret_service_exits_69(gk):
    # A bus with no service files, so nothing gets D-Bus-activated: no keychain at all.
    conf = gk.root / "bus.conf"
    conf.write_text(BUS_WITHOUT_SERVICES.format(dir=gk.root / "run"))
    bus = subprocess.Popen(
        ["dbus-daemon", f"--config-file={conf}", "--nofork", "--nopidfile", "--print-address=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=gk.vars,
    )
    try:
        assert bus.stdout is not None
        address = bus.stdout.readline().decode().strip()
        for command in [(), ("store",)]:
            result = gk.run(*command, stdin=b"sk-x", DBUS_SESSION_BUS_ADDRESS=address)
            result.assert_clean_failure(69)
            assert "no Secret Service is running" in result.err
            assert "gnome-keyring-daemon --unlock" in result.err
    finally:
        bus.terminate()
        bus.wait(5)


@blackbox
def test_a_locked_keychain_in_silent_contexts_exits_4_quickly(secret_service, collection):
    gk = secret_service
    assert gk.run("store", stdin=SECRET.encode()).code == 0
    collection.lock()
    assert collection.is_locked(), "gnome-keyring did not lock the collection"
    for ctx in (*SILENT_CONTEXTS, None):
        started = time.monotonic()
        result = gk.run(context=ctx, timeout=30)
        elapsed = time.monotonic() - started
        result.assert_clean_failure(4)
        assert "locked" in result.err
        assert "unlock" in result.err
        assert elapsed < 5, f"{ctx}: took {elapsed:.1f} s; the silent deadline is 10 s"
    for command in (("store",), ("erase",)):
        result = gk.run(*command, stdin=b"sk-other", context="background", timeout=30)
        result.assert_clean_failure(4)
    assert collection.is_locked()


@blackbox
def test_a_locked_keychain_with_no_prompter_does_not_hang_interactive_runs(
    secret_service, collection
):
    gk = secret_service
    assert gk.run("store", stdin=SECRET.encode()).code == 0
    collection.lock()
    assert collection.is_locked()
    # Interactive: gatekey asks the Secret Service to prompt; with no display the prompt is
    # dismissed, and the run must end with exit 4, not wait for the 120 s interactive deadline.
    result = gk.run(context="interactive", timeout=60)
    result.assert_clean_failure(4)
    assert "locked" in result.err
    assert not leaked(SECRET, result.stderr)


def test_this_module_runs_against_the_installed_gatekey():
    # The package under test is the regular install in .venv, not the source tree.
    assert "helpers" not in Path(keystore.__file__).parts, keystore.__file__
