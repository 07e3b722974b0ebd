"""Bad input (issue 7, item 5): Hypothesis-generated environment values, cache files and token
responses. Config files are fuzzed beside this, in tests/reliability/test_config_fuzz.py.

Whatever the input, a run of the installed executable (no arguments, stdin closed, as the app
runs it) must: exit with a documented code; print nothing on stdout unless it exits 0, and then
exactly the credential and a newline; never show a traceback; write only ``gatekey: `` lines on
stderr; and never admit an internal error ("this is a bug in gatekey"). A damaged cache file is
a miss: the run fetches again and succeeds.

What is expected where the README leaves room (the decisions of this module):
- A token or discovery answer that is not a well-formed OAuth/OpenID answer (not a JSON
  object, no usable lifetime or endpoint, a redirect, an unreadable encoding) is 75 (temporary:
  http.py checks every answer before MSAL sees it); 5xx is 75; an OAuth error code maps as
  ``IdpSource._raise_for`` documents (4 for a dead grant, 1 otherwise, 75 for
  ``temporarily_unavailable``). A command printing unusable JSON exits 1.
- An empty (or blank) ``GATEKEY_PROFILE`` means unset; any other name that is not a profile is
  78. An unusable cache directory (``GATEKEY_CACHE_DIR``, ``XDG_CACHE_HOME``, ``HOME``) is a
  warning and the run succeeds. A ``GATEKEY_CONFIG`` that does not name a readable TOML file is
  78. An unknown ``CLAUDE_HELPER_CONTEXT`` or log level changes nothing a run prints.
- A well-formed remembered failure (failures/<key>.json) still in force is reported with its
  exit code (that is what it is for); anything else in that file is a miss.
- Values quoted in messages (a profile name, an address) have their control characters
  escaped: every stderr line starts with ``gatekey: ``.

The bugs this module found (internal errors, tracebacks, a token on stdout of a failed run,
stderr lines split by an echoed value) were fixed; each is kept below as a regression test with
its exact input (the ``Regressions`` section), and the generated tests tolerate none of them.
With nothing else tolerated, the generated tests then found five more (an id_token that is no
JWT, a scope that is not text, a discovery document without authorization_endpoint or with an
issuer that is not text, an MSAL AccessToken time that is no integer), all inside MSAL; gatekey
now checks those before MSAL sees them, and they are kept as regression tests too.

Hypothesis reuses the function-scoped ``gk`` fixture across examples, so every example works in
a fresh directory (``fresh``): its own cache, working directory and HOME.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from blackbox_env import Env, Result, exe
from deadlines import HARNESS_S
from fake_vault import FakeVault
from gatekey import cache as gk_cache
from gatekey import errors, securecache
from gatekey.output import FORMATS, render
from gatekey.token import Token, is_time, printable, servable
from oidc_peer import make_tls
from rounds import rounds
from scripted_idp import AUTHORIZATION, CONF_CLIENT, CONF_SECRET, PUBLIC_CLIENT, Reply, ScriptedIdp

pytestmark = pytest.mark.blackbox

DOCUMENTED_EXITS = {0, 1, 3, 4, 69, 75, 78}
SUPPORT = Path(__file__).resolve().parent.parent / "support"
# Examples per property that runs gatekey (about a second each): 20 in benchmarks/figures.py,
# 8 in CI (``GATEKEY_FUZZ_EXAMPLES``), and FEWER for the properties whose every example signs in
# or fetches (12 and 4). Each property also runs its @example cases, and the regressions below
# run their exact inputs, so a bug found once is checked on every run. CI's counts catch a
# regression that breaks a whole kind of input (a damaged file, an answer shape); Hypothesis
# draws new examples on every run (and replays failures saved in .hypothesis/), so CI's runs
# together still cover what one figures run does.
EXAMPLES = rounds("GATEKEY_FUZZ_EXAMPLES", ci=8)
FEWER = max(3, EXAMPLES * 3 // 5)
SUBPROCESS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
IN_PROCESS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
INTERNAL = re.compile(r"internal error \((\w+)\); this is a bug in gatekey")


# --- running gatekey ------------------------------------------------------------------------
def run(
    gk: Env,
    env: dict[str, Any],
    *args: str,
    exe_name: str = "gatekey",
    cwd: Path | None = None,
    timeout: float = HARNESS_S,
) -> Result:
    """One run with exactly ``env`` (bytes values: not UTF-8), stdin closed."""
    argv = [exe(exe_name), *args]
    # As str with surrogate escapes (subprocess encodes them back to the same bytes).
    env = {k: os.fsdecode(v) if isinstance(v, bytes) else v for k, v in env.items()}
    t0 = time.monotonic()
    proc = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=env,
        timeout=timeout,
        cwd=cwd or gk.root,
    )
    if proc.returncode == 0 and (not args or args[0] == "get"):
        gk.printed.append(proc.stdout)  # the gk fixture checks the run log for pieces of it
    return Result(argv, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0)


def fresh(gk: Env) -> Path:
    """A new directory for one Hypothesis example (cache, cwd, HOME live in it). The previous
    example's is removed: the suite's secret-hygiene check reads the cache directories of every
    run at the end of the test, and cannot read some of what these examples leave there."""
    for old in gk.root.glob("ex-*"):
        shutil.rmtree(old, ignore_errors=True)
    path = Path(tempfile.mkdtemp(dir=gk.root, prefix="ex-"))
    (path / "home").mkdir()
    return path


@pytest.fixture(autouse=True)
def _remove_examples(gk: Env) -> Iterator[None]:
    """Remove the last example's directory before the suite's secret-hygiene check reads the
    cache directories of the test's runs (it cannot parse the damaged files left there)."""
    yield
    for old in gk.root.glob("ex-*"):
        shutil.rmtree(old, ignore_errors=True)


def example_env(gk: Env, ex: Path, **extra: Any) -> dict[str, Any]:
    env: dict[str, Any] = dict(gk.vars)
    env.update(HOME=str(ex / "home"), GATEKEY_CACHE_DIR=str(ex / "cache"))
    env["XDG_CACHE_HOME"] = str(ex / "home" / ".cache")
    env.pop("CLAUDE_HELPER_CONTEXT", None)
    env.update(extra)
    return env


def assert_contract(r: Result, codes: set[int] | None = None, *, token: str | None = None) -> None:
    """The helper contract for one run: a documented exit (in ``codes`` if given), nothing on
    stdout on failure (exactly ``token`` and a newline on success, if given), no traceback, no
    internal error, and every stderr line prefixed with ``gatekey: ``."""
    assert r.code in DOCUMENTED_EXITS, (r.code, r.err)
    if r.code != 0:
        assert r.stdout == b"", f"stdout on failure (exit {r.code}): {r.stdout!r}"
    assert "Traceback" not in r.err, r.err
    assert INTERNAL.search(r.err) is None, r.err
    for line in r.err.splitlines():
        assert line.startswith("gatekey: "), f"stderr line without the prefix: {line!r}"
    if r.code != 0:
        assert r.err.startswith("gatekey: "), r.err
    if codes is not None:
        assert r.code in codes, (r.code, codes, r.err)
    if r.code == 0 and token is not None:
        assert r.stdout == token.encode() + b"\n", (r.stdout, token)


def new_token() -> str:
    return f"tok-{uuid.uuid4().hex}"


# --- strategies: environment values -----------------------------------------------------------
def _no_nul(text: str) -> str:
    return text.replace("\x00", "")


NASTY_TEXT = [
    "",
    " ",
    "\t\n",
    "\x1c",
    "\u2028",
    "\ufeff",
    "é",
    "\U0001f511",
    "x" * 100_000,
    "$(id)",
    "../..",
    "-p",
    "--help",
]
env_bytes = st.binary(max_size=30).map(lambda b: b.replace(b"\x00", b""))
env_text = st.one_of(
    st.text(max_size=30).map(_no_nul),
    st.sampled_from(NASTY_TEXT),
    env_bytes,
)


def decoded(value: str | bytes) -> str:
    """What gatekey sees in os.environ for ``value``."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


# --- 1. environment values --------------------------------------------------------------------
CONTEXT_VALUES = [
    "interactive",
    "mid-session-refresh",
    " MID-SESSION-REFRESH\n",
    "scheduled-task",
    "setup-test",
    "background",
    "Background",
    "interactive\x1b[31m",
]
LOG_LEVELS = ["debug", "DEBUG ", "info", "warning", "error", "critical", "notset", "root", "0", "x"]
SWITCHED = ("CLAUDE_HELPER_CONTEXT", "GATEKEY_LOG_LEVEL", "GATEKEY_NO_FASTPATH")


@st.composite
def switch_values(draw: st.DrawFn) -> dict[str, str | bytes]:
    out: dict[str, str | bytes] = {}
    for var in SWITCHED:
        choice = draw(st.integers(0, 3))
        if choice == 0:
            continue
        if choice == 1 and var == "CLAUDE_HELPER_CONTEXT":
            out[var] = draw(st.sampled_from(CONTEXT_VALUES))
        elif choice == 1 and var == "GATEKEY_LOG_LEVEL":
            out[var] = draw(st.sampled_from(LOG_LEVELS))
        else:
            out[var] = draw(env_text)
    return out


@SUBPROCESS
@given(values=switch_values(), exe_name=st.sampled_from(["gatekey", "gatekey-vault"]))
@example(values={"CLAUDE_HELPER_CONTEXT": "x" * 100_000}, exe_name="gatekey")
@example(
    values={"GATEKEY_LOG_LEVEL": "DEBUG", "CLAUDE_HELPER_CONTEXT": b"\xff"}, exe_name="gatekey"
)
@example(values={"GATEKEY_NO_FASTPATH": "", "GATEKEY_LOG_LEVEL": "root"}, exe_name="gatekey")
def test_context_log_level_and_fast_path_switch(
    gk: Env, values: dict[str, str | bytes], exe_name: str
) -> None:
    """Any CLAUDE_HELPER_CONTEXT, GATEKEY_LOG_LEVEL, GATEKEY_NO_FASTPATH: the token, exit 0."""
    gk.write_config(gk.counting_profile())
    ex, token = fresh(gk), new_token()
    primed = run(gk, example_env(gk, ex, TOKEN=token, CLAUDE_HELPER_CONTEXT="background"), cwd=ex)
    assert_contract(primed, {0}, token=token)
    r = run(gk, example_env(gk, ex, TOKEN=token, **values), exe_name=exe_name, cwd=ex)
    assert_contract(r, {0}, token=token)


@SUBPROCESS
@given(name=st.one_of(env_text, st.sampled_from(["cmd", " cmd ", "cmd\x1f", "CMD", "cmd2"])))
@example(name="\u2028cmd\u3000")
def test_profile_name(gk: Env, name: str | bytes) -> None:
    """GATEKEY_PROFILE: blank means unset; the profile's own name works; anything else is 78."""
    gk.write_config(gk.counting_profile())
    ex, token = fresh(gk), new_token()
    for exe_name in ("gatekey", "gatekey-vault"):
        r = run(gk, example_env(gk, ex, TOKEN=token, GATEKEY_PROFILE=name), exe_name=exe_name)
        expected = 0 if decoded(name).strip() in ("", "cmd") else 78
        assert_contract(r, {expected}, token=token)
    # Families with no profile of theirs: a config error whatever the name.
    for exe_name in ("gatekey-keychain", "gatekey-idp"):
        r = run(gk, example_env(gk, ex, TOKEN=token, GATEKEY_PROFILE=name), exe_name=exe_name)
        assert_contract(r, {78})


PATH_VARS = (
    "GATEKEY_CACHE_DIR",
    "XDG_CACHE_HOME",
    "HOME",
    "GATEKEY_CONFIG",
    "GATEKEY_MANAGED_CONFIG",
    "XDG_CONFIG_HOME",
)
_segment = st.text(
    st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in (".", ".."))


@st.composite
def path_values(draw: st.DrawFn) -> tuple[str, str | bytes]:
    """(kind, value): a path kept inside the example's directory (the run's cwd), or harmless."""
    kind = draw(
        st.sampled_from(
            [
                "relative",
                "relative",
                "bytes",
                "dir",
                "file",
                "below-file",
                "dev-null",
                "long-name",
                "long-path",
                "blank",
                "empty",
                "tilde",
            ]
        )
    )
    if kind == "relative":
        return kind, "/".join(draw(st.lists(_segment, min_size=1, max_size=3)))
    if kind == "bytes":
        raw = draw(st.binary(min_size=1, max_size=12)).replace(b"\x00", b"").replace(b"/", b"")
        return kind, b"b-" + raw
    fixed = {
        "dir": "a-dir",
        "file": "a-file",
        "below-file": "a-file/below",
        "dev-null": "/dev/null",
        "long-name": "n" * 300,
        "long-path": "/".join(["d"] * 2100),
        "blank": " ",
        "empty": "",
        "tilde": "~/t",
    }
    return kind, fixed[kind]


def absolute_in(ex: Path, value: str | bytes) -> str | bytes:
    if isinstance(value, bytes):
        return os.fsencode(ex) + b"/" + value
    if value in ("", " ") or value.startswith(("/", "~")):
        return value
    return str(ex / value)


@SUBPROCESS
@given(var=st.sampled_from(PATH_VARS), path=path_values(), relative=st.booleans())
@example(var="GATEKEY_CACHE_DIR", path=("bytes", b"b-\xff\xfe"), relative=False)
@example(var="HOME", path=("file", "a-file"), relative=True)
@example(var="GATEKEY_CONFIG", path=("dir", "a-dir"), relative=False)
@example(var="GATEKEY_MANAGED_CONFIG", path=("long-path", "/".join(["d"] * 2100)), relative=True)
def test_path_variables(gk: Env, var: str, path: tuple[str, str | bytes], relative: bool) -> None:
    """Cache locations: any value works (an unusable one is a warning). Config locations: the
    file is read, or the run exits 78 (69 when no config at all leaves the keychain default)."""
    kind, value = path
    if var in ("GATEKEY_CACHE_DIR", "GATEKEY_CONFIG") and kind.startswith("long"):
        kind, value = "relative", "x"  # the suite's hygiene check cannot stat these (ENAMETOOLONG)
    gk.write_config(gk.counting_profile())
    ex, token = fresh(gk), new_token()
    (ex / "a-dir").mkdir()
    (ex / "a-file").write_text("not [toml\n")
    if not relative:
        value = absolute_in(ex, value)
    if var == "HOME" and kind in ("empty", "blank", "dev-null"):
        value = "~"  # HOME="" would put the cache under the real "/" (outside the test)
    env = example_env(gk, ex, TOKEN=token)
    if var in ("XDG_CACHE_HOME", "HOME"):
        del env["GATEKEY_CACHE_DIR"]
    if var == "HOME":
        del env["XDG_CACHE_HOME"]
    if var == "XDG_CONFIG_HOME":
        del env["GATEKEY_CONFIG"]
    env[var] = value
    r = run(gk, env, cwd=ex)
    if var in ("GATEKEY_CACHE_DIR", "XDG_CACHE_HOME", "HOME"):
        assert_contract(r, {0}, token=token)
        # A second run: served (fast path or full path) or fetched again, the same contract.
        assert_contract(run(gk, env, cwd=ex), {0}, token=token)
    elif var == "GATEKEY_CONFIG":
        # "" is unset (the default location, empty here: the keychain default, no keychain).
        expected = {69} if value == "" else ({69, 78} if kind == "dev-null" else {78})
        assert_contract(r, expected)
    elif var == "GATEKEY_MANAGED_CONFIG":
        # Optional: absent is no managed settings; present but unreadable (a directory, a name
        # too long, a path through a file) or not TOML is 78.
        try:
            os.stat(os.path.join(ex, os.fsdecode(value)) if value else "")
            absent = False
        except FileNotFoundError:
            absent = True
        except OSError:
            absent = False
        if os.path.exists("/etc/gatekey/config.toml") or absent:
            assert_contract(r, {0}, token=token)
        else:
            assert_contract(r, {0, 78}, token=token)
    else:  # XDG_CONFIG_HOME with no GATEKEY_CONFIG: no user file there (the keychain default,
        # 69), or a location that cannot be looked at (under a file: 78)
        unreadable = ("file", "below-file", "long-path", "long-name", "dev-null")
        codes = {69, 78} if kind in unreadable else {69}
        assert_contract(r, codes)


@pytest.fixture
def plain_vault(tmp_path: Path) -> Iterator[FakeVault]:
    vault = FakeVault(tmp_path / "vault", tls=False).start()
    try:
        yield vault
    finally:
        vault.stop()


VAULT_TOKEN = "hvs.bad-input-root-token-0123"
VAULT_ADDR_SAMPLES = [
    "http://127.0.0.1:1",
    "https://127.0.0.1:1",
    "http://example.invalid",
    "http://[::1",
    "http://127.0.0.1:99999",
    "ftp://127.0.0.1",
    "http://",
    "eng/",
]
VAULT_SECRET = "vault-secret-for-bad-input-4567"
VAULT_PROFILE = (
    '[profiles.kv]\nsource = "vault"\npath = "app"\nfield = "api_key"\n'
    'allow_insecure_cache = true\nmin_ttl = "1m"\n'
)


@SUBPROCESS
@given(
    var=st.sampled_from(["VAULT_ADDR", "VAULT_NAMESPACE", "VAULT_TOKEN"]),
    value=st.one_of(
        st.text(max_size=30).map(_no_nul),
        st.sampled_from(NASTY_TEXT),
        st.sampled_from(VAULT_ADDR_SAMPLES),
    ),
)
@example(var="VAULT_ADDR", value="{address}/")
@example(var="VAULT_TOKEN", value="hvs.é")
@example(var="VAULT_NAMESPACE", value="a\x7fb")
def test_vault_environment_fallbacks(
    gk: Env, plain_vault: FakeVault, var: str, value: str | bytes
) -> None:
    """VAULT_ADDR / VAULT_NAMESPACE / VAULT_TOKEN (a vault profile without address or auth)."""
    plain_vault.add_token(VAULT_TOKEN, policies=["root"])
    plain_vault.put_secret("app", {"api_key": VAULT_SECRET})
    gk.write_config(VAULT_PROFILE)
    ex = fresh(gk)
    if var != "VAULT_ADDR" and value in VAULT_ADDR_SAMPLES:
        # (addresses are for VAULT_ADDR; stderr names addresses, and the suite's hygiene check
        # would take a Vault token that looks like one for a leak)
        value = f"{var.lower()}-{value.encode().hex()}"
    if var == "VAULT_TOKEN" and isinstance(value, str):
        # Unique per example: the hygiene check registers every VAULT_TOKEN of the test and
        # scans every stderr of the test, where another example may quote the same text as
        # its (non-secret) VAULT_NAMESPACE or address.
        value += f"~{uuid.uuid4().hex[:6]}"
    if value == "{address}/":
        value = plain_vault.address + "/"
    env = example_env(gk, ex, VAULT_ADDR=plain_vault.address, VAULT_TOKEN=VAULT_TOKEN)
    env[var] = value
    good = {
        "VAULT_ADDR": decoded(value).rstrip("/") == plain_vault.address,
        "VAULT_TOKEN": decoded(value).strip() == VAULT_TOKEN,
        "VAULT_NAMESPACE": decoded(value) == "",
    }[var]
    r = run(gk, env, cwd=ex, exe_name="gatekey-vault")
    assert_contract(r, {0} if good else None, token=VAULT_SECRET)
    if r.code == 0:
        assert r.stdout == VAULT_SECRET.encode() + b"\n"


@settings(SUBPROCESS, max_examples=FEWER)
@given(address=st.one_of(env_text, st.sampled_from(["unix:path=/nonexistent", "tcp:host=x"])))
@example(address="unix:abstract=\x01")
@example(address="unix:path=/dev/null")
def test_dbus_address_for_the_keychain(gk: Env, address: str | bytes) -> None:
    """DBUS_SESSION_BUS_ADDRESS of any shape: the keychain source is unavailable (69)."""
    ex = fresh(gk)
    env = example_env(gk, ex, DBUS_SESSION_BUS_ADDRESS=address)
    env.pop("GATEKEY_CONFIG", None)  # the embedded default profile: the keychain
    r = run(gk, env, cwd=ex, exe_name="gatekey-keychain")
    assert_contract(r, {69})


# --- 2. cache files -----------------------------------------------------------------------------
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.sampled_from([10**400, -(10**400), 2**63, -1, 0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
wrong_values = st.one_of(
    json_values, st.sampled_from([math.nan, math.inf, -math.inf, -1e12, 1e12, 1e308])
)


def dumps(data: Any) -> bytes:
    return json.dumps(data, allow_nan=True).encode()


@st.composite
def damaged(draw: st.DrawFn, valid: dict[str, Any]) -> bytes:
    """A damaged version of a valid JSON object: random bytes, a truncation, wrong shapes,
    wrong types, huge numbers, NaN/Infinity, negative times, deep nesting."""
    how = draw(
        st.sampled_from(["bytes", "truncate", "shape", "field", "fields", "drop", "deep", "huge"])
    )
    text = dumps(valid)
    if how == "bytes":
        return draw(st.binary(max_size=200))
    if how == "truncate":  # (the cut is drawn independently of the length: times vary)
        return text[: draw(st.integers(0, 10**6)) % max(len(text), 1)]
    if how == "shape":
        return dumps(draw(json_values))
    if how == "deep":
        depth = draw(st.integers(500, 100_000))
        return b"[" * depth + b"]" * draw(st.sampled_from([0, depth]))
    if how == "huge":
        return text[:-1] + b', "x": ' + b"9" * 5000 + b"}"
    data = dict(valid)
    keys = sorted(data)
    if how == "drop":
        for key in draw(st.lists(st.sampled_from(keys), min_size=1, unique=True)):
            del data[key]
        return dumps(data)
    chosen = (
        [draw(st.sampled_from(keys))]
        if how == "field"
        else draw(st.lists(st.sampled_from(keys), min_size=1, unique=True))
    )
    for key in chosen:
        data[key] = draw(wrong_values)
    return dumps(data)


def valid_entry(now: float) -> dict[str, Any]:
    return Token.from_expires_in("tok-valid-entry", 7200, source="command", now=now - 10).to_json()


# In-process: the readers, many examples.
@IN_PROCESS
@given(content=st.data())
def test_token_entry_reader(tmp_path: Path, content: st.DataObject) -> None:
    now = time.time()
    raw = content.draw(damaged(valid_entry(now)))
    cache = gk_cache.FileCache(str(tmp_path / "c"))
    (tmp_path / "c" / "tokens").mkdir(parents=True, exist_ok=True)
    (tmp_path / "c" / "tokens" / "k.json").write_bytes(raw)
    token, why = cache.read("k")
    if token is None:
        assert isinstance(why, str)
        return
    assert why is None
    assert printable(token.value)
    for number in (token.expires_at, token.refresh_at):
        assert number is None or is_time(number)
    assert is_time(token.obtained_at)
    for bypass in (False, True):
        servable(token, now, 3900.0, bypass=bypass, force=False)
    for fmt in FORMATS:
        render(token.value, fmt, auth_scheme="bearer", headers={})


def valid_index_entry(key: str) -> dict[str, Any]:
    return {
        "config": [None, [1, 2, 3, 4]],
        "profile": "cmd",
        "key": key,
        "store": "file",
        "environment": {},
        "min_ttl": 3900.0,
        "output": "token",
        "auth_scheme": "bearer",
        "headers": {},
        "timeouts": {"interactive": 120.0, "mid_session_refresh": 15.0, "silent": 10.0},
        "log_file": None,
    }


@IN_PROCESS
@given(content=st.data())
def test_index_reader(tmp_path: Path, content: st.DataObject) -> None:
    raw = content.draw(damaged({"sel": valid_index_entry("k"), "other": {}}))
    root = tmp_path / "c"
    root.mkdir(exist_ok=True)
    (root / "index.json").write_bytes(raw)
    cache = gk_cache.FileCache(str(root))
    entry = cache.read_index("sel")
    assert entry is None or isinstance(entry, dict)
    cache.write_index("sel", valid_index_entry("k"))  # a damaged index is replaced, not fatal
    assert cache.read_index("sel") == valid_index_entry("k")


def valid_failure(now: float) -> dict[str, Any]:
    return {
        "at": now - 1,
        "until": now + 30,
        "count": 2,
        "exit": 75,
        "kind": "TemporaryFailure",
        "message": "the source is down",
    }


@IN_PROCESS
@given(content=st.data())
@example(content=None)
def test_failure_record_reader(tmp_path: Path, content: st.DataObject | None) -> None:
    now = time.time()
    raw = (
        dumps(dict(valid_failure(now), exit=3))
        if content is None
        else content.draw(damaged(valid_failure(now)))
    )
    root = tmp_path / "c"
    (root / "failures").mkdir(parents=True, exist_ok=True)
    (root / "failures" / "k.json").write_bytes(raw)
    cache = gk_cache.FileCache(str(root))
    record = cache.read_failure("k", now)
    if record is not None:
        err, until = record
        assert isinstance(err, errors.HelperError)
        assert type(err.exit_code) is int
        assert err.exit_code in gk_cache.REMEMBERED_EXIT_CODES
        assert now < until <= now + gk_cache.BACKOFF_MAX + 5
    # Recording the next failure over whatever is there must work too.
    until = cache.record_failure("k", errors.TemporaryFailure("down"), now)
    assert now < until <= now + gk_cache.BACKOFF_MAX


def discovery_url(issuer: str) -> str:
    return issuer + "/.well-known/openid-configuration"


def discovery_key(issuer: str) -> str:
    return hashlib.sha256(discovery_url(issuer).encode()).hexdigest()[:32]


def good_discovery(issuer: str) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/auth",
        "token_endpoint": f"{issuer}/token",
    }


def is_discovery_document(body: Any, issuer: str) -> bool:
    return isinstance(body, dict) and all(
        isinstance(body.get(k), str) and body.get(k) == v for k, v in good_discovery(issuer).items()
    )


@IN_PROCESS
@given(content=st.data())
def test_discovery_cache_reader(tmp_path: Path, content: st.DataObject) -> None:
    from gatekey.context import RunContext
    from gatekey.http import IdpSession

    issuer = "https://127.0.0.1:9/oidc"
    url = discovery_url(issuer)
    entry = {"at": time.time() - 60, "url": url, "body": good_discovery(issuer)}
    blob = content.draw(damaged(entry)).decode("utf-8", "replace")
    cache = gk_cache.FileCache(str(tmp_path / "c"))
    wrapper = content.draw(st.sampled_from(["blob", "raw", "wrong"]))
    if wrapper == "blob":
        cache.write_blob("discovery", discovery_key(issuer), blob)
    else:
        (tmp_path / "c" / "discovery").mkdir(parents=True, exist_ok=True)
        body = blob.encode() if wrapper == "raw" else dumps({"blob": content.draw(json_values)})
        (tmp_path / "c" / "discovery" / f"{discovery_key(issuer)}.json").write_bytes(body)
    session = IdpSession(RunContext("background", interactive=False, timeout=5), cache=cache)
    response = session._cached_discovery("GET", url)
    body_ok = response is None or is_discovery_document(response.json(), issuer)
    assert body_ok, "a damaged discovery cache entry was served instead of being a miss"


@IN_PROCESS
@given(raw=st.data())
@example(raw=None)
def test_secure_cache_decoder(raw: st.DataObject | None) -> None:
    """The kernel keyring / keychain copy of a vault secret: damaged is a miss (None)."""
    data = b"[" * 50 if raw is None else raw.draw(damaged(valid_entry(time.time())))
    token = securecache._decode(data)
    assert token is None or printable(token.value)


# Black box: a cached token, then one of gatekey's files damaged.
def prime_counting(gk: Env, ex: Path, token: str, *, secure: bool = False) -> dict[str, Any]:
    gk.write_config(gk.counting_profile(secure=secure))
    env = example_env(gk, ex, TOKEN=token)
    assert_contract(run(gk, env, cwd=ex), {0}, token=token)
    return env


def entry_file(ex: Path) -> Path:
    files = sorted((ex / "cache" / "tokens").glob("*.json"))
    assert len(files) == 1, files
    return files[0]


def expected_from_entry(raw: bytes, fetched: str) -> set[str]:
    """The tokens a run may print with ``raw`` as its cache entry: the cached one if gatekey's
    reader accepts it and it is servable now, else the one the source gives."""
    try:
        data = json.loads(raw)
        token = Token.from_json(data)
    except (ValueError, RecursionError):
        return {fetched}
    if servable(token, time.time(), 3900.0, bypass=False, force=False):
        return {token.value, fetched}  # servable (or, at a boundary, not: then fetched)
    return {fetched}


@SUBPROCESS
@given(content=st.data(), full_path=st.booleans())
@example(content=None, full_path=False)
def test_damaged_token_entry_is_a_miss(
    gk: Env, content: st.DataObject | None, full_path: bool
) -> None:
    ex, token = fresh(gk), new_token()
    env = prime_counting(gk, ex, token)
    entry = entry_file(ex)
    now = time.time()
    raw = b"{" if content is None else content.draw(damaged(json.loads(entry.read_text())))
    entry.write_bytes(raw)
    allowed = expected_from_entry(raw, token)
    if full_path:
        env["GATEKEY_NO_FASTPATH"] = "1"
    r = run(gk, env, cwd=ex)
    assert_contract(r, {0})
    assert r.stdout.decode().rstrip("\n") in allowed, (r.stdout, allowed, raw[:200], now)


@st.composite
def damaged_index(draw: st.DrawFn, valid: dict[str, Any]) -> bytes:
    """Damage the index: the whole file, or one entry's values replaced by non-string types
    (a string value that happens to be another valid output format would be a different,
    valid configuration, not damage)."""
    if draw(st.booleans()):
        return draw(damaged(valid))
    data = json.loads(json.dumps(valid))
    selection = next(iter(data))
    entry = data[selection]
    non_strings = json_values.filter(lambda v: not isinstance(v, str))
    for key in draw(st.lists(st.sampled_from(sorted(entry)), min_size=1, unique=True)):
        entry[key] = draw(non_strings)
    return dumps(data)


@SUBPROCESS
@given(content=st.data())
def test_damaged_index_is_a_miss(gk: Env, content: st.DataObject) -> None:
    """index.json (what the standard-library cache hit reads): damaged, the full path serves.
    (The counting source's own tokens, tok-<n>.)"""
    gk.write_config(gk.counting_profile())
    ex = fresh(gk)
    env = example_env(gk, ex)
    primed = run(gk, env, cwd=ex)
    assert_contract(primed, {0})
    token = primed.stdout.decode().rstrip("\n")
    index = ex / "cache" / "index.json"
    raw = content.draw(damaged_index(json.loads(index.read_text())))
    index.write_bytes(raw)
    r = run(gk, env, cwd=ex)
    assert_contract(r, {0}, token=token)
    # The full path rewrote a usable index: the next run is a cache hit with the same token.
    assert_contract(run(gk, env, cwd=ex), {0}, token=token)
    assert json.loads(index.read_text())


@SUBPROCESS
@given(content=st.data(), failing=st.booleans())
@example(content=None, failing=False)
def test_damaged_failure_record(gk: Env, content: st.DataObject | None, failing: bool) -> None:
    """failures/<key>.json with an expired token (so the run reads it): damaged is a miss; a
    well-formed record in force is reported with its code. With the source failing too, the
    record is then rewritten over whatever was there."""
    ex, token = fresh(gk), new_token()
    env = prime_counting(gk, ex, token)
    entry = entry_file(ex)
    key = entry.stem
    now = time.time()
    data = json.loads(entry.read_text())
    data.update(expires_at=now - 100, obtained_at=now - 7300)
    entry.write_text(json.dumps(data))
    # Offsets well away from the boundaries (until <= now: over; > now + 65: a clock jump).
    valid = dict(valid_failure(now), until=now + 40)
    raw = (
        dumps(dict(valid, exit=[75]))
        if content is None
        else content.draw(damaged(valid).filter(lambda b: b"until" in b or len(b) < 40))
    )
    (ex / "cache" / "failures").mkdir(exist_ok=True)
    (ex / "cache" / "failures" / f"{key}.json").write_bytes(raw)
    record = gk_cache.FileCache(str(ex / "cache")).read_failure(key, time.time())
    if failing:
        env["FAIL"] = "1"
    r = run(gk, env, cwd=ex)
    assert_contract(r, None, token=token)
    if record is not None:
        assert r.code == int(record[0].exit_code), (r.code, r.err)
        assert "not asking again until" in r.err
    elif failing:
        assert r.code == 1, r.err
        assert "exited with status 1" in r.err, r.err
    else:
        assert r.code == 0, r.err


# --- identity providers: a scripted provider over HTTPS ----------------------------------------
@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_tls(tmp_path_factory.mktemp("bad-input-tls"))


@pytest.fixture
def idp(tls: dict[str, str]) -> Iterator[ScriptedIdp]:
    server = ScriptedIdp(tls)
    try:
        yield server
    finally:
        server.stop()


# The documented deadlines (no [timeouts]): the scripted provider answers every request at
# once, so no run here waits one out, and a shorter one would race the work a run must finish
# (a sign-in, a TLS handshake, an answer to check) on a busy machine.
TIMEOUTS = ""


def client_credentials(gk: Env, idp: ScriptedIdp, timeouts: str = TIMEOUTS) -> None:
    gk.vars["GK_CLIENT_SECRET"] = CONF_SECRET
    gk.write_config(
        timeouts + f'[profiles.svc]\nsource = "oidc"\nissuer = "{idp.issuer}"\n'
        f'client_id = "{CONF_CLIENT}"\nclient_secret = {{ env = "GK_CLIENT_SECRET" }}\n'
        f'flow = "client-credentials"\nscopes = ["api.read"]\nca_bundle = "{idp.ca}"\n'
        'min_ttl = "10m"\n'
    )


def public_client(gk: Env, idp: ScriptedIdp) -> None:
    gk.write_config(
        TIMEOUTS + f'[profiles.user]\nsource = "oidc"\nissuer = "{idp.issuer}"\n'
        f'client_id = "{PUBLIC_CLIENT}"\nflow = "device-code"\nscopes = ["api.read"]\n'
        f'ca_bundle = "{idp.ca}"\ntoken_cache = "file"\nmin_ttl = "10m"\n'
    )


TOKEN_FIELDS = (
    "access_token",
    "expires_in",
    "token_type",
    "refresh_token",
    "scope",
    "id_token",
    "ext_expires_in",
    "expires_on",
    "refresh_in",
    "error",
    "error_description",
)
ERROR_CODES = [
    "invalid_grant",
    "invalid_client",
    "invalid_scope",
    "temporarily_unavailable",
    "server_error",
    "slow_down",
    "access_denied",
    "unsupported_grant_type",
]
token_values = st.one_of(
    st.from_regex(r"\A[A-Za-z0-9._~+/=-]{8,60}\Z"),
    st.text(min_size=1, max_size=20),
    json_values,
)
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "text/html",
    "text/plain; charset=latin-1",
    "application/x-www-form-urlencoded",
    "",
]
STATUSES = [200, 200, 200, 201, 204, 400, 401, 403, 404, 429, 500, 502, 503]


@st.composite
def token_answers(draw: st.DrawFn) -> Answer:
    """Generated token endpoint answers."""
    body_obj: dict[str, Any] = {}
    if draw(st.integers(0, 4)) > 0:
        body_obj["access_token"] = draw(token_values)
    if draw(st.integers(0, 4)) > 0:
        body_obj["expires_in"] = draw(
            st.one_of(
                st.integers(601, 10**6),
                st.integers(min_value=-(10**6), max_value=10**12),
                st.from_regex(r"\A[0-9]{1,6}\Z"),
                wrong_values,
            )
        )
    for name in TOKEN_FIELDS[2:]:
        if draw(st.integers(0, 5)) == 0:
            value = draw(st.sampled_from(ERROR_CODES)) if name == "error" else draw(json_values)
            body_obj[name] = value
    encoding = draw(
        st.sampled_from(
            ["json"] * 6 + ["truncated", "bytes", "list", "empty", "utf16", "latin1", "form"]
        )
    )
    cut = draw(st.integers(0, 10**6))
    noise = draw(st.binary(max_size=100))
    status = draw(st.one_of(st.sampled_from(STATUSES), st.integers(200, 599)))
    headers = []
    content_type = draw(st.sampled_from(CONTENT_TYPES))
    if content_type:
        headers.append(("Content-Type", content_type))
    transport = draw(st.sampled_from(["plain"] * 12 + ["gzip", "chunked", "loop", "eof"]))
    if transport == "gzip":
        headers.append(("Content-Encoding", "gzip"))
    elif transport == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
    elif transport == "loop":
        status = 302
        headers.append(("Location", "/oidc/token"))
    return Answer(body_obj, encoding, cut, noise, status, headers, transport)


class Answer:
    """A generated token answer, built per run with a unique suffix on a string access token
    (so that no two examples share a token value: the suite's secret-hygiene check scans every
    stderr of the test for every token any example printed)."""

    def __init__(
        self,
        body: dict[str, Any],
        encoding: str = "json",
        cut: int = 0,
        noise: bytes = b"",
        status: int = 200,
        headers: list[tuple[str, str]] | None = None,
        transport: str = "plain",
    ) -> None:
        self.body, self.encoding, self.cut, self.noise = body, encoding, cut, noise
        self.status, self.transport = status, transport
        self.headers = [("Content-Type", "application/json")] if headers is None else headers

    def __repr__(self) -> str:
        return (
            f"Answer({self.body!r}, {self.encoding!r}, {self.cut}, {self.noise!r}, "
            f"{self.status}, {self.headers!r}, {self.transport!r})"
        )

    def build(self, salt: str) -> tuple[Reply, dict[str, Any] | None]:
        """(the reply, the JSON object it carries if it carries one as such)."""
        body_obj = dict(self.body)
        if isinstance(body_obj.get("access_token"), str):
            body_obj["access_token"] += salt
        obj: dict[str, Any] | None = None
        if self.encoding == "json":
            body, obj = dumps(body_obj), body_obj
        elif self.encoding == "truncated":
            text = dumps(body_obj)
            body = text[: self.cut % max(len(text), 1)]
        elif self.encoding == "bytes":
            body = self.noise
        elif self.encoding == "list":
            body = dumps([body_obj])
        elif self.encoding == "empty":
            body = b""
        elif self.encoding == "utf16":
            body = json.dumps(body_obj).encode("utf-16")
        elif self.encoding == "latin1":
            text = json.dumps({**body_obj, "x": "é"}, ensure_ascii=False)
            body = text.encode("latin-1", "replace")
        else:
            body = "&".join(f"{k}={v}" for k, v in body_obj.items()).encode()
        reply = Reply(
            self.status,
            body,
            self.headers,
            content_length=self.transport not in ("chunked", "eof"),
        )
        return reply, (obj if self.transport in ("plain", "eof") else None)


def well_formed(status: int, obj: dict[str, Any] | None) -> str | None:
    """The access token a well-formed success answer carries (so the run must print it)."""
    if status != 200 or obj is None or set(obj) - {"access_token", "expires_in", "token_type"}:
        return None
    value, expires_in = obj.get("access_token"), obj.get("expires_in")
    if not (isinstance(value, str) and printable(value) and value.isascii()):
        return None
    if type(expires_in) is not int or not 600 < expires_in < 10**7:
        return None
    return value if isinstance(obj.get("token_type", "Bearer"), str) else None


def check_idp_run(r: Result, reply: Reply, obj: dict[str, Any] | None) -> None:
    expected = well_formed(reply.status, obj)
    if expected is not None:
        assert_contract(r, {0}, token=expected)
        return
    assert_contract(r, None)
    if reply.status >= 500 and reply.status != 302:
        assert r.code == 75, (r.code, r.err)
    if r.code == 0:  # a token after all (a charset guessed, a lifetime MSAL could read)
        assert r.stdout.count(b"\n") == 1, r.stdout
        if obj is not None:
            assert r.stdout == f"{obj['access_token']}\n".encode()
    else:
        assert r.code in {1, 4, 75}, (r.code, r.err)


@SUBPROCESS
@given(answer=token_answers())
@example(answer=Answer({"access_token": "abcdefgh", "expires_in": 10**30}))
@example(answer=Answer({"access_token": "abcdefgh", "expires_in": -5}))
@example(answer=Answer({"access_token": "abcdefgh", "expires_in": 7200, "token_type": 5}))
@example(answer=Answer({"error": "invalid_grant"}, status=400))
@example(answer=Answer({"error": "temporarily_unavailable"}, status=400))
def test_token_endpoint_answers(gk: Env, idp: ScriptedIdp, answer: Answer) -> None:
    """Client credentials against generated token answers: a token or a documented failure."""
    reply, obj = answer.build("-" + uuid.uuid4().hex[:8])
    client_credentials(gk, idp)
    idp.token = reply
    ex = fresh(gk)
    env = example_env(gk, ex, CLAUDE_HELPER_CONTEXT="background")
    r = run(gk, env, cwd=ex)
    check_idp_run(r, reply, obj)
    if r.code == 0:  # served again from the cache, or fetched again: the same contract
        idp.token = idp.good_token
        again = run(gk, env, cwd=ex)
        assert_contract(again, {0})


@settings(SUBPROCESS, max_examples=FEWER)
@given(secret=st.one_of(st.text(max_size=30).map(_no_nul), st.sampled_from(NASTY_TEXT)))
@example(secret=CONF_SECRET + "\n")
@example(secret="é")
def test_client_secret_from_the_environment(gk: Env, idp: ScriptedIdp, secret: str | bytes) -> None:
    """client_secret = { env = ... } with any text: blank is 3 (not found), a wrong one is the
    provider's invalid_client (1), the right one (whitespace trimmed) a token. (Not UTF-8: the
    suite's hygiene check cannot register such a secret: see
    test_client_secret_not_utf8_is_a_config_error.)"""

    basic = "Basic " + base64.b64encode(f"{CONF_CLIENT}:{CONF_SECRET}".encode()).decode()

    def check_secret(form: dict[str, str]) -> Reply:
        if form.get("client_secret") == CONF_SECRET or form.get(AUTHORIZATION) == basic:
            return idp.good_token(form)
        return Reply.json({"error": "invalid_client"}, 401)

    client_credentials(gk, idp)
    idp.token = check_secret
    ex = fresh(gk)
    env = example_env(gk, ex, GK_CLIENT_SECRET=secret, CLAUDE_HELPER_CONTEXT="background")
    r = run(gk, env, cwd=ex)
    value = decoded(secret).strip()
    if not value:
        assert_contract(r, {3})
    elif value == CONF_SECRET:
        assert_contract(r, {0})
    else:
        assert_contract(r, {1, 0})  # 0 only if the secret reached the server intact anyway


@st.composite
def discovery_answers(draw: st.DrawFn, issuer: str) -> Reply:
    doc: dict[str, Any] = dict(good_discovery(issuer))
    doc["token_endpoint"] = f"{issuer}/token"
    doc["device_authorization_endpoint"] = f"{issuer}/device/auth"
    for key in draw(st.lists(st.sampled_from(sorted(doc)), unique=True, max_size=3)):
        if draw(st.booleans()):
            del doc[key]
        else:
            doc[key] = draw(st.one_of(json_values, st.sampled_from(["http://127.0.0.1:1/t", ""])))
    encoding = draw(st.sampled_from(["json", "json", "json", "shape", "bytes", "empty"]))
    body = {
        "json": lambda: dumps(doc),
        "shape": lambda: dumps(draw(json_values)),
        "bytes": lambda: draw(st.binary(max_size=60)),
        "empty": lambda: b"",
    }[encoding]()
    status = draw(st.sampled_from([200, 200, 200, 301, 404, 500]))
    return Reply(status, body, [("Content-Type", "application/json")])


@settings(SUBPROCESS, max_examples=FEWER)
@given(data=st.data())
def test_discovery_answers(gk: Env, idp: ScriptedIdp, data: st.DataObject) -> None:
    """A generated discovery document: a token (if it still names the endpoints) or a failure."""
    reply = data.draw(discovery_answers(idp.issuer))
    client_credentials(gk, idp)
    idp.discovery = reply
    ex = fresh(gk)
    r = run(gk, example_env(gk, ex, CLAUDE_HELPER_CONTEXT="background"), cwd=ex)
    assert_contract(r, None)
    if r.code != 0:
        assert r.code in {1, 75, 78}, (r.code, r.err)


@settings(SUBPROCESS, max_examples=FEWER)
@given(content=st.data(), wrapper=st.sampled_from(["blob", "blob", "raw"]))
def test_damaged_discovery_cache_is_a_miss(
    gk: Env, idp: ScriptedIdp, content: st.DataObject, wrapper: str
) -> None:
    """discovery/<hash>.json damaged: the document is fetched again and the run succeeds."""
    client_credentials(gk, idp)
    ex = fresh(gk)
    env = example_env(gk, ex, CLAUDE_HELPER_CONTEXT="background")
    # What a run leaves there (http.py): {"blob": JSON text of {"at", "url", "body"}}.
    url = discovery_url(idp.issuer)
    entry = {"at": time.time() - 60, "url": url, "body": idp.discovery_document()}
    cached = ex / "cache" / "discovery" / f"{discovery_key(idp.issuer)}.json"
    cached.parent.mkdir(parents=True)
    damaged_blob = content.draw(damaged(entry)).decode("utf-8", "replace")
    if wrapper == "blob":
        cached.write_text(json.dumps({"blob": damaged_blob}))
    else:
        cached.write_text(damaged_blob)
    r = run(gk, env, cwd=ex)
    assert_contract(r, {0})


# MSAL's saved sign-in (token_cache = "file"): signed in once per test, then damaged.
@pytest.fixture
def signed_in(gk: Env, idp: ScriptedIdp) -> Path:
    """A device-code sign-in at the scripted provider; returns a snapshot of the cache dir."""
    public_client(gk, idp)
    snapshot = gk.root / "signed-in"
    r = run(gk, dict(gk.vars, GATEKEY_CACHE_DIR=str(snapshot)), "login", "-p", "user")
    assert r.code == 0, r.err
    return snapshot


@settings(SUBPROCESS, max_examples=FEWER)
@given(content=st.data())
def test_damaged_msal_state_is_a_new_sign_in(
    gk: Env, idp: ScriptedIdp, signed_in: Path, content: st.DataObject
) -> None:
    """msal/<key>.json damaged (gatekey's wrapper or MSAL's own state inside it): a silent run
    refreshes (0) or says a sign-in is needed (4); never a crash."""
    ex = fresh(gk)
    shutil.copytree(signed_in, ex / "cache")
    shutil.rmtree(ex / "cache" / "tokens", ignore_errors=True)  # gatekey's copy: gone
    files = sorted((ex / "cache" / "msal").glob("*.json"))
    assert len(files) == 1, files
    outer = json.loads(files[0].read_text())
    inner = json.loads(outer["blob"])
    msal_state = json.loads(inner["msal"])
    layer = content.draw(st.sampled_from(["file", "wrapper", "msal", "msal-section"]))
    if layer == "file":
        files[0].write_bytes(content.draw(damaged(outer)))
    elif layer == "wrapper":
        files[0].write_text(json.dumps({"blob": content.draw(damaged(inner)).decode("latin-1")}))
    elif layer == "msal":
        inner["msal"] = content.draw(damaged(msal_state)).decode("latin-1")
        files[0].write_text(json.dumps({"blob": json.dumps(inner)}))
    else:
        section = content.draw(st.sampled_from(sorted(msal_state)))
        items = msal_state[section]
        if isinstance(items, dict) and items and content.draw(st.booleans()):
            item = items[sorted(items)[0]]
            for field in content.draw(st.lists(st.sampled_from(sorted(item)), min_size=1)):
                item[field] = content.draw(wrong_values)
        else:
            msal_state[section] = content.draw(json_values)
        inner["msal"] = json.dumps(msal_state, allow_nan=True)
        files[0].write_text(json.dumps({"blob": json.dumps(inner)}))
    env = example_env(gk, ex, CLAUDE_HELPER_CONTEXT="background")
    r = run(gk, env, cwd=ex)
    assert_contract(r, {0, 4})


# --- command source output ------------------------------------------------------------------
EMIT = "import sys; sys.stdout.buffer.write(open(sys.argv[1], 'rb').read())"


@st.composite
def command_outputs(draw: st.DrawFn) -> bytes:
    obj: dict[str, Any] = {}
    if draw(st.integers(0, 4)) > 0:
        obj["access_token"] = draw(token_values)
    if draw(st.integers(0, 4)) > 0:
        obj["expires_in"] = draw(
            st.one_of(
                st.integers(31, 10**6),
                st.from_regex(r"\A[0-9]{1,7}\Z"),
                st.from_regex(r"\A\s*[0-9]{1,4}\s*\Z"),
                wrong_values,
            )
        )
    how = draw(st.sampled_from(["json"] * 5 + ["bytes", "truncated", "nested", "text", "deep"]))
    if how == "json":
        return dumps(obj)
    if how == "bytes":
        return draw(st.binary(max_size=80))
    if how == "truncated":
        text = dumps(obj)
        return text[: draw(st.integers(0, 10**6)) % (len(text) + 1)]
    if how == "nested":
        return dumps({"access_token": obj})
    if how == "deep":
        return b"[" * draw(st.integers(100, 200_000))
    return draw(st.text(max_size=40)).encode("utf-8", "surrogatepass")


def command_expectation(out: bytes) -> str | None:
    """The token a command printing ``out`` must yield (parse = "json", default paths), or None
    when the output is unusable. Independent of gatekey's own parser."""
    try:
        data = json.loads(out.decode("utf-8", "replace").strip())
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    value, expires_in = data.get("access_token"), data.get("expires_in")
    if not isinstance(value, str) or not printable(value):
        return None
    if isinstance(expires_in, str) and expires_in.strip().isdigit():
        try:
            expires_in = int(expires_in)
        except ValueError:
            return None
    if type(expires_in) not in (int, float) or not -(10**7) < expires_in < 10**7:
        return None
    return value if expires_in > 31 else None


@SUBPROCESS
@given(out=command_outputs())
@example(out=b'{"access_token": "abcdefgh", "expires_in": ' + b"9" * 400 + b"}")
@example(out=b'{"access_token": "abcdefgh", "expires_in": NaN}')
@example(out=b'{"access_token": "abcdefgh", "expires_in": "\xd9\xa3\xd9\xa3\xd9\xa3"}')
def test_command_json_output(gk: Env, out: bytes) -> None:
    """A command source (parse = "json") printing generated output: the token or exit 1."""
    ex = fresh(gk)
    (ex / "out").write_bytes(out)
    gk.write_config(
        f'[profiles.cli]\nsource = "command"\ncommand = ["{sys.executable}", "-c", "{EMIT}", '
        f'"{ex / "out"}"]\nparse = "json"\ntoken_path = "access_token"\n'
        'expires_in_path = "expires_in"\nallow_insecure_cache = true\nmin_ttl = "1m"\n'
    )
    r = run(gk, example_env(gk, ex, CLAUDE_HELPER_CONTEXT="background"), cwd=ex)
    expected = command_expectation(out)
    if expected is not None:
        assert_contract(r, {0}, token=expected)
        return
    assert_contract(r, None)
    if r.code == 0:  # usable after all (e.g. NaN or a huge lifetime): the token it printed
        assert r.stdout.rstrip(b"\n") == json.loads(out)["access_token"].encode()
    else:
        assert r.code == 1, (r.code, r.err)


# --- Regressions: the bugs this module found, each kept with its exact input ----------------
def assert_handled(r: Result, codes: set[int], *secrets: str) -> None:
    """What gatekey must do with a regression input: a documented failure (or success)
    in ``codes``, one clean stderr account, nothing on stdout on failure, no secret echoed."""
    assert_contract(r, codes)
    for secret in secrets:
        assert secret not in r.err, "a token from the provider's answer is on stderr"


def run_client_credentials(gk: Env, idp: ScriptedIdp) -> Result:
    # A generous deadline: the redirect loop's 31 TLS connections must not hit it under load.
    client_credentials(gk, idp, timeouts='[timeouts]\nsilent = "60s"\n')
    ex = fresh(gk)
    return run(gk, example_env(gk, ex, CLAUDE_HELPER_CONTEXT="background"), cwd=ex)


LEAKED = "leaked-access-token-0123456789"


@pytest.mark.parametrize(
    "reply",
    [
        Reply(
            200,
            f"access_token={LEAKED}&token_type=bearer".encode(),
            [("Content-Type", "application/x-www-form-urlencoded")],
        ),
        Reply(200, b"<html>proxy login</html>", [("Content-Type", "text/html")]),
        Reply(400, b"", []),
    ],
    ids=["form-encoded-token", "html", "empty-400"],
)
def test_token_answer_not_json(gk: Env, idp: ScriptedIdp, reply: Reply) -> None:
    """Was a bug (found here): MSAL's logger.exception put a Python traceback on stderr with
    the answer's body echoed (here a form-encoded access token). http.py now refuses answers
    from an identity provider that are not JSON (json_answers)."""
    idp.token = reply
    assert_handled(run_client_credentials(gk, idp), {1, 75}, LEAKED)


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, b"[]", [("Content-Type", "application/json")]),
        Reply.json({"access_token": "abcdefgh", "expires_in": "soon"}),
        Reply(200, b'{"access_token": "abcdefgh", "expires_in": 1e400}', []),
        Reply.json({"access_token": "abcdefgh", "expires_in": 3600, "refresh_in": "x"}),
        Reply(302, b"", [("Location", "/oidc/token")]),
        Reply(200, b"garbage", [("Content-Encoding", "gzip")]),
        Reply(200, b"xx", [("Transfer-Encoding", "chunked")], content_length=False),
    ],
    ids=[
        "json-array(AttributeError)",
        "expires_in-string(ValueError)",
        "expires_in-1e400(OverflowError)",
        "refresh_in-string(TypeError)",
        "redirect-loop(TooManyRedirects)",
        "gzip-garbage(ContentDecodingError)",
        "broken-chunks(ChunkedEncodingError)",
    ],
)
def test_malformed_token_answers_are_temporary_failures(
    gk: Env, idp: ScriptedIdp, reply: Reply
) -> None:
    """Was a bug found here: a malformed token answer (the exception in each id) was an internal
    error ("this is a bug in gatekey"); now http.py checks the answer before MSAL sees it and
    the run is a clean temporary failure (75)."""
    idp.token = reply
    assert_handled(run_client_credentials(gk, idp), {75})


@pytest.mark.parametrize(
    "reply",
    [
        Reply.json({}),
        Reply.json([]),
        Reply.json({"token_endpoint": 5, "authorization_endpoint": "x"}),
        "301-with-the-good-document",
    ],
    ids=["empty-object(KeyError)", "array(AttributeError)", "endpoint-5", "301(RuntimeError)"],
)
def test_malformed_discovery_answers_are_temporary_failures(
    gk: Env, idp: ScriptedIdp, reply: Reply | str
) -> None:
    """Was a bug found here: a malformed discovery document (or a redirect to one) was an
    internal error; now it is a clean temporary failure (75)."""
    if isinstance(reply, str):
        reply = Reply(301, dumps(idp.discovery_document()), [("Content-Type", "application/json")])
    idp.discovery = reply
    assert_handled(run_client_credentials(gk, idp), {75})


@pytest.mark.parametrize(
    "entry",
    [
        '{"at": 1' + "0" * 400 + ', "url": "<url>", "body": {}}',
        '{"at": NaN, "url": "<url>", "body": {}}',
        "[" * 5000,
    ],
    ids=["at-10**400(OverflowError)", "at-NaN-empty-body(KeyError)", "deep(RecursionError)"],
)
def test_damaged_discovery_cache_entries_are_misses(gk: Env, idp: ScriptedIdp, entry: str) -> None:
    """Was a bug found here: a huge or NaN "at", or deep nesting, in discovery/<hash>.json made
    the run an internal error; now such an entry is a miss: the document is fetched again (0)."""
    client_credentials(gk, idp)
    ex = fresh(gk)
    cached = ex / "cache" / "discovery" / f"{discovery_key(idp.issuer)}.json"
    cached.parent.mkdir(parents=True)
    cached.write_text(json.dumps({"blob": entry.replace("<url>", discovery_url(idp.issuer))}))
    r = run(gk, example_env(gk, ex, CLAUDE_HELPER_CONTEXT="background"), cwd=ex)
    assert_handled(r, {0})


@pytest.mark.parametrize("exit_value", [[75], 75.0], ids=["exit-list", "exit-float"])
def test_remembered_failure_with_a_damaged_exit_is_handled(gk: Env, exit_value: Any) -> None:
    """Was a bug found here: failures/<key>.json with an unhashable "exit" was an internal
    error (TypeError), and a float one (75.0) made the run exit 1 printing "75.0" on stderr;
    now such a record is a miss (0) or honoured with the documented 75."""
    ex, token = fresh(gk), new_token()
    env = prime_counting(gk, ex, token)
    entry = entry_file(ex)
    now = time.time()
    data = json.loads(entry.read_text())
    data.update(expires_at=now - 100, obtained_at=now - 7300)
    entry.write_text(json.dumps(data))
    failure = dict(valid_failure(now), until=now + 40, exit=exit_value)
    (ex / "cache" / "failures").mkdir(exist_ok=True)
    (ex / "cache" / "failures" / f"{entry.stem}.json").write_bytes(dumps(failure))
    r = run(gk, env, cwd=ex)
    # A damaged record is a miss (0, the token), or it is honoured with the documented 75.
    assert_handled(r, {0, 75})


def test_remembered_failure_huge_negative_count_is_overwritten(gk: Env) -> None:
    """Was a bug found here: recording a source failure over a record whose "count" is a huge
    negative integer raised OverflowError (an internal error); now the run reports the
    command's own failure (1)."""
    ex, token = fresh(gk), new_token()
    env = prime_counting(gk, ex, token)
    entry = entry_file(ex)
    entry.unlink()
    (ex / "cache" / "failures").mkdir(exist_ok=True)
    body = f'{{"at": {time.time()!r}, "count": -1{"0" * 400}}}'
    (ex / "cache" / "failures" / f"{entry.stem}.json").write_text(body)
    r = run(gk, dict(env, FAIL="1"), cwd=ex)
    assert_handled(r, {1})
    assert "exited with status 1" in r.err


def test_deep_kernel_keyring_entry_is_a_miss(gk: Env) -> None:
    """Was a bug found here: a cached copy in the kernel keyring (or keychain) nested too deep
    raised RecursionError in securecache._decode (an internal error); now it is a miss: the
    source is asked again (0)."""
    from gatekey import kernelkeys

    if not kernelkeys.available():
        pytest.skip("no kernel key retention service here")
    ex, token = fresh(gk), new_token()
    env = prime_counting(gk, ex, token, secure=True)
    entry = next(iter(json.loads((ex / "cache" / "index.json").read_text()).values()))
    name = entry["kernel_name"]
    try:
        assert kernelkeys.write(name, b"[" * 5000, timeout=600)
        r = run(gk, dict(env, GATEKEY_NO_FASTPATH="1"), cwd=ex)
    finally:
        kernelkeys.delete(name)
    assert_handled(r, {0})


@pytest.mark.parametrize("address", ["tcp:host=x", "unix:tmpdir=/tmp"])
def test_unusable_dbus_transport_is_no_secret_service(gk: Env, address: str) -> None:
    """Was a bug found here: a D-Bus address with a transport jeepney cannot open (tcp:,
    unix:tmpdir=) raised RuntimeError (an internal error); now it is 69 (no Secret Service)."""
    ex = fresh(gk)
    env = example_env(gk, ex, DBUS_SESSION_BUS_ADDRESS=address)
    env.pop("GATEKEY_CONFIG", None)
    assert_handled(run(gk, env, cwd=ex, exe_name="gatekey-keychain"), {69})


@pytest.mark.parametrize(
    ("var", "value", "escaped"),
    [("GATEKEY_PROFILE", "0\r0", "0\\x0d0"), ("VAULT_ADDR", "\t\n", "'\\t\\n'")],
    ids=["profile", "addr"],
)
def test_control_characters_are_escaped_on_stderr(
    gk: Env, var: str, value: str, escaped: str
) -> None:
    """Was a bug found here: GATEKEY_PROFILE / VAULT_ADDR were quoted raw in error messages, so
    a line break in the value split the stderr line (the app's log got a line without
    "gatekey: "); now control characters are escaped (0\\x0d0, '\\t\\n'): 78, every line
    prefixed."""
    gk.write_config(gk.counting_profile() if var == "GATEKEY_PROFILE" else VAULT_PROFILE)
    ex = fresh(gk)
    env = example_env(gk, ex, VAULT_TOKEN=VAULT_TOKEN)
    env[var] = value
    r = run(gk, env, cwd=ex)
    assert_handled(r, {78})
    assert escaped in r.err, r.err


@pytest.mark.parametrize(
    ("var", "value", "code"),
    [
        ("VAULT_NAMESPACE", " ", 78),
        ("VAULT_TOKEN", "hvs.é\u0100", 4),
        ("VAULT_ADDR", "http://[::1", 78),
    ],
    ids=["namespace-blank", "token-non-latin1", "addr-bracket"],
)
def test_unusable_vault_environment_values_are_clean_failures(
    gk: Env, plain_vault: FakeVault, var: str, value: str, code: int
) -> None:
    """Was a bug found here: a VAULT_NAMESPACE / VAULT_TOKEN that is no valid HTTP header
    value, or a malformed VAULT_ADDR, was an internal error (InvalidHeader, UnicodeEncodeError,
    ValueError); now a blank namespace or a malformed address is a config error (78) and a token
    that cannot be sent is a token Vault would refuse (4)."""
    plain_vault.add_token(VAULT_TOKEN, policies=["root"])
    plain_vault.put_secret("app", {"api_key": VAULT_SECRET})
    gk.write_config(VAULT_PROFILE)
    ex = fresh(gk)
    env = example_env(gk, ex, VAULT_ADDR=plain_vault.address, VAULT_TOKEN=VAULT_TOKEN)
    env[var] = value
    assert_handled(run(gk, env, cwd=ex, exe_name="gatekey-vault"), {code})


@pytest.mark.parametrize(
    "out",
    [
        b"[" * 5000,
        b'{"access_token": "abcdefgh", "expires_in": 1' + b"0" * 400 + b"}",
        '{"access_token": "abcdefgh", "expires_in": "\u00b2"}'.encode(),
        b'{"access_token": "abcdefgh", "expires_in": "0\\u001f"}',
    ],
    ids=["deep", "expires_in-10**400", "expires_in-superscript-2", "expires_in-0-US"],
)
def test_unusable_command_output_is_exit_1(gk: Env, out: bytes) -> None:
    """Was a bug found here: a command's JSON output nested too deep (RecursionError), an
    expires_in too large for a float (OverflowError) or one str.isdigit() accepts but int()
    does not (ValueError) was an internal error; now it is the command's failure (1)."""
    ex = fresh(gk)
    (ex / "out").write_bytes(out)
    gk.write_config(
        f'[profiles.cli]\nsource = "command"\ncommand = ["{sys.executable}", "-c", "{EMIT}", '
        f'"{ex / "out"}"]\nparse = "json"\ntoken_path = "access_token"\n'
        'expires_in_path = "expires_in"\nallow_insecure_cache = true\nmin_ttl = "1m"\n'
    )
    r = run(gk, example_env(gk, ex, CLAUDE_HELPER_CONTEXT="background"), cwd=ex)
    assert_handled(r, {1})


def _msal_file(ex: Path) -> Path:
    files = sorted((ex / "cache" / "msal").glob("*.json"))
    assert len(files) == 1, files
    return files[0]


def _set_msal_state(path: Path, transform: Any) -> None:
    inner = json.loads(json.loads(path.read_text())["blob"])
    inner["msal"] = transform(json.loads(inner["msal"]))
    path.write_text(json.dumps({"blob": json.dumps(inner)}))


def _access_token_secret_nan(state: dict[str, Any]) -> str:
    for item in state["AccessToken"].values():
        item["secret"] = math.nan
    return json.dumps(state, allow_nan=True)


@pytest.mark.parametrize(
    "damage",
    ["msal-number", "access-token-section-null", "access-token-secret-nan", "wrapper-deep"],
)
def test_damaged_msal_state_is_a_miss(
    gk: Env, idp: ScriptedIdp, signed_in: Path, damage: str
) -> None:
    """Was a bug found here: damaged MSAL state was handed to MSAL unchecked (valid JSON not of
    MSAL's shape was an internal error, or exit 1 "returned no access token"), and gatekey's own
    wrapper nested too deep was RecursionError; now it is a miss: a refresh (0) or a sign-in is
    needed (4), with at most one warning line."""
    ex = fresh(gk)
    shutil.copytree(signed_in, ex / "cache")
    shutil.rmtree(ex / "cache" / "tokens", ignore_errors=True)
    path = _msal_file(ex)
    if damage == "msal-number":
        _set_msal_state(path, lambda state: "0")
    elif damage == "access-token-section-null":
        _set_msal_state(path, lambda state: json.dumps({**state, "AccessToken": None}))
    elif damage == "access-token-secret-nan":
        _set_msal_state(path, _access_token_secret_nan)
    else:
        path.write_text(json.dumps({"blob": "[" * 5000}))
    r = run(gk, example_env(gk, ex, CLAUDE_HELPER_CONTEXT="background"), cwd=ex)
    try:
        assert_handled(r, {0, 4})
        warnings = [line for line in r.err.splitlines() if line.startswith("gatekey: warning: ")]
        assert len(warnings) <= 1, r.err
    finally:
        shutil.rmtree(ex, ignore_errors=True)  # the hygiene check cannot read the deep one


def test_client_secret_not_utf8_is_a_config_error(
    idp: ScriptedIdp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was a bug found here: a client_secret environment variable that is not UTF-8 raised
    UnicodeEncodeError inside MSAL (an internal error); now fetching is a config error (78).
    In-process: the suite's hygiene check cannot record a subprocess given such a secret."""
    from gatekey import config, refresh
    from gatekey.context import RunContext

    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[profiles.svc]\nsource = "oidc"\nissuer = "{idp.issuer}"\n'
        f'client_id = "{CONF_CLIENT}"\nclient_secret = {{ env = "GK_CLIENT_SECRET" }}\n'
        f'flow = "client-credentials"\nscopes = ["api.read"]\nca_bundle = "{idp.ca}"\n'
    )
    monkeypatch.setenv("GATEKEY_CONFIG", str(cfg))
    monkeypatch.setenv("GATEKEY_MANAGED_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("GATEKEY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GK_CLIENT_SECRET", os.fsdecode(b"\x80"))
    source = refresh.make_source(config.load().profile("svc"))
    run_ctx = RunContext("background", interactive=False, timeout=10)
    with pytest.raises(errors.ConfigError) as raised:
        source.fetch(run_ctx)
    assert raised.value.exit_code == 78


def test_index_log_file_not_a_path_still_serves(gk: Env) -> None:
    """Was a bug found here: an index.json entry whose log_file is no path (here 5) made the
    standard-library cache hit print the token, then crash writing the run log (a traceback,
    exit 1, the token on stdout of a failed run); now the run serves the token (0), exactly."""
    ex = fresh(gk)
    gk.write_config(gk.counting_profile())
    env = example_env(gk, ex)  # short tok-<n> tokens: see test_damaged_index_is_a_miss
    primed = run(gk, env, cwd=ex)
    assert primed.code == 0, primed.err
    token = primed.stdout.decode().rstrip("\n")
    index = ex / "cache" / "index.json"
    data = json.loads(index.read_text())
    for entry in data.values():
        entry["log_file"] = 5
    index.write_text(json.dumps(data))
    r = run(gk, env, cwd=ex)
    assert_handled(r, {0})
    assert r.stdout == f"{token}\n".encode(), r.stdout


# --- Found once nothing else was tolerated: the answers MSAL itself trips on ------------------
# Each was an internal error inside MSAL with the exact input Hypothesis generated; gatekey now
# checks these fields (http.IdpSession._check_answer, idp._msal_shaped) before MSAL sees them.
@pytest.mark.parametrize(
    "body",
    [
        {
            "token_type": None,
            "id_token": None,
            "expires_on": None,
            "error": "invalid_grant",
            "error_description": None,
        },
        {"access_token": "abcdefgh", "expires_in": 3600, "id_token": 5},
    ],
    ids=["found(AttributeError)", "with-a-token(AttributeError)"],
)
def test_id_token_that_is_not_a_jwt_is_a_clean_failure(
    gk: Env, idp: ScriptedIdp, body: dict[str, Any]
) -> None:
    """Found by test_token_endpoint_answers (the first input, HTTP 200, exactly as generated):
    the answer reached MSAL, which decodes id_token unchecked; now a temporary failure."""
    idp.token = Reply.json(body)
    assert_handled(run_client_credentials(gk, idp), {75})


def test_discovery_without_authorization_endpoint_is_handled(gk: Env, idp: ScriptedIdp) -> None:
    """Found by test_discovery_answers (exactly as generated): issuer, token_endpoint and
    device_authorization_endpoint, no authorization_endpoint; client credentials do not need
    it, but MSAL does: a clean temporary failure (75)."""
    idp.discovery = Reply.json(
        {
            "issuer": idp.issuer,
            "token_endpoint": f"{idp.issuer}/token",
            "device_authorization_endpoint": f"{idp.issuer}/device/auth",
        }
    )
    assert_handled(run_client_credentials(gk, idp), {75})


@pytest.mark.parametrize(
    "body",
    [
        {"token_type": None, "refresh_token": None, "scope": None},
        {"access_token": "abcdefgh", "expires_in": 3600, "scope": 5},
    ],
    ids=["found(AttributeError)", "with-a-token(AttributeError)"],
)
def test_scope_that_is_not_text_is_a_clean_failure(
    gk: Env, idp: ScriptedIdp, body: dict[str, Any]
) -> None:
    """Found by test_token_endpoint_answers (the first input, HTTP 200, exactly as generated):
    MSAL splits scope; now a temporary failure."""
    idp.token = Reply.json(body)
    assert_handled(run_client_credentials(gk, idp), {75})


def test_discovery_issuer_that_is_not_text_is_a_clean_failure(gk: Env, idp: ScriptedIdp) -> None:
    """Found by test_discovery_answers (exactly as generated: the good document with
    "issuer": [null])."""
    doc = {
        "issuer": [None],
        "authorization_endpoint": f"{idp.issuer}/auth",
        "token_endpoint": f"{idp.issuer}/token",
        "device_authorization_endpoint": f"{idp.issuer}/device/auth",
    }
    idp.discovery = Reply.json(doc)
    assert_handled(run_client_credentials(gk, idp), {75})


def _first_access_token_expires_on_inf(state: dict[str, Any]) -> str:
    items = state["AccessToken"]
    items[sorted(items)[0]]["expires_on"] = math.inf
    return json.dumps(state, allow_nan=True)


def test_msal_access_token_time_that_is_no_integer_is_a_miss(
    gk: Env, idp: ScriptedIdp, signed_in: Path
) -> None:
    """Found by test_damaged_msal_state_is_a_new_sign_in (exactly as generated: the section
    AccessToken, its first entry's expires_on set to Infinity)."""
    ex = fresh(gk)
    shutil.copytree(signed_in, ex / "cache")
    shutil.rmtree(ex / "cache" / "tokens", ignore_errors=True)
    _set_msal_state(_msal_file(ex), _first_access_token_expires_on_inf)
    r = run(gk, example_env(gk, ex, CLAUDE_HELPER_CONTEXT="background"), cwd=ex)
    assert_handled(r, {0, 4})


def test_a_redirect_from_the_token_endpoint_is_not_followed(gk: Env, idp: ScriptedIdp) -> None:
    """A token endpoint answering 307 to plain http (a hijacked or misconfigured proxy): the
    form (here the client secret) must not be sent on. Was followed by requests, silently."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(0.2)
    received: list[bytes] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                received.append(conn.recv(65536))

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    idp.token = Reply(307, b"", [("Location", f"http://127.0.0.1:{port}/steal")])
    try:
        r = run_client_credentials(gk, idp)
    finally:
        listener.close()
        thread.join(timeout=2)
    assert_handled(r, {75})
    assert "redirect" in r.err, r.err
    assert received == [], "the token request was sent on to the redirect's target"


def test_no_session_follows_a_redirect_to_plain_http(idp: ScriptedIdp) -> None:
    """Vault and Key Vault sessions do follow redirects (Vault's standby nodes send them), but
    never to plain http, where the token header would travel in clear text."""
    from gatekey.context import RunContext
    from gatekey.http import IdpSession

    idp.token = Reply(307, b"", [("Location", "http://127.0.0.1:9/steal")])
    run_ctx = RunContext("background", interactive=False, timeout=10)
    with (
        IdpSession(run_ctx, ca_bundle=idp.ca) as s,
        pytest.raises(errors.TemporaryFailure, match="redirected to a plain-HTTP URL"),
    ):
        s.post(f"{idp.issuer}/token", headers={"X-Vault-Token": "hvs.not-sent"})
