"""The source contract: what every source kind does, checked the same way for each (issue 13).

Like keyring's ``BackendBasicTests``: every test here runs once per kind in
``contract.ADAPTERS`` (support/contract.py says how each kind is set up, against which peer);
a new kind gets the whole contract by adding its adapter there. The kinds: the eight built-in
ones and the example plugin kind (tests/support/plugin_kind, registered by entry point), with
and without its optional capability.

Black box: the installed ``gatekey``, run as the app runs it (no arguments, stdin closed, a
private HOME / config / cache, CLAUDE_HELPER_CONTEXT set or not). For each kind:

- a run in every context (and with none) prints exactly the credential and a newline, exit 0,
  nothing on stderr, inside the context's documented deadline;
- a bad config (a misspelt key, a missing required key, a wrong type, a value the kind itself
  refuses) exits 78 with one line naming the file, the profile and the key;
- an unreachable source (nothing listens; the program or file is not there) exits with the
  kind's code inside the deadline, nothing on stdout, one ``gatekey:`` line saying what; doctor
  fails, on its source line (on its token line where the kind's probe looks at this machine
  only, as aws-secrets-manager's does);
- after a success, the source goes away: a run within the token's life prints the cached
  credential, silently while it is fresh and with one warning once it is due; the keychain,
  which gatekey never caches, fails instead (README: "A keychain secret is never cached");
- ``gatekey status`` lists the profile with its kind and a storage line; ``gatekey doctor``
  prints the kind's own probe as its source line (SKIP for a kind that has none);
- secret hygiene: each kind's secrets are registered with the suite's checker
  (support/hygiene.py) in every test, so a leak would be caught, and runs with debug logging,
  succeeding and failing, leak none of them.

Time margins come from the documented deadlines (support/deadlines.py). Peers are shared by the
module (support/contract_peers.py: ``Peers``); each test stops what it starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import pytest

from contract import ADAPTERS, CONTEXTS, Adapter, Failure, Mistake
from contract_peers import PROFILE, Env, Peers, Result, config_toml
from deadlines import deadline_of, ends_by
from gatekey import kinds, sources
from gatekey.schema import KeySpec
from hygiene import Recorder, Run

pytestmark = [pytest.mark.blackbox]

MARKS = {
    "keychain": [pytest.mark.keychain],
    "entra": [pytest.mark.oidc],
    "oidc": [pytest.mark.oidc],
    "azure-key-vault": [pytest.mark.oidc],
}
KINDS = [pytest.param(kind, marks=MARKS.get(kind, ())) for kind in ADAPTERS]


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peers]:
    made = Peers(tmp_path_factory.mktemp("contract-peers"))
    yield made
    made.close()


@pytest.fixture(params=KINDS)
def source(
    request: pytest.FixtureRequest,
    gk: Env,
    tmp_path: Path,
    peers: Peers,
    secret_hygiene: Recorder,
) -> Iterator[Adapter]:
    """The kind's working profile ``contract`` in ``gk``, its secrets registered."""
    peers.fixture = request.getfixturevalue  # the session's OpenID providers (conftest)
    (tmp_path / "source").mkdir()
    adapter = ADAPTERS[request.param](gk, peers, tmp_path / "source")
    try:
        adapter.start()
        for value in adapter.secrets():
            secret_hygiene.register(value, f"the {adapter.kind} contract's set-up")
        yield adapter
    finally:
        adapter.close()


# --- what runs look like ----------------------------------------------------------------------
def run_together(
    source: Adapter, runs: dict[str, tuple[str | None, dict[str, str]]]
) -> dict[str, Result]:
    """One no-argument run per ``{name: (context, extra environment)}``, two at a time: no more
    than this machine's two cores, so that the test itself never slows a run that must finish
    its work inside the documented deadline."""
    with ThreadPoolExecutor(2) as pool:
        futures = {
            name: pool.submit(source.gk.run, context=ctx, **extra)
            for name, (ctx, extra) in runs.items()
        }
        return {name: future.result() for name, future in futures.items()}


def printed(source: Adapter, r: Result, context: str | None, *, warnings: int = 0) -> str:
    """Success: exit 0, the credential and one newline on stdout byte-exact, ``warnings``
    warning lines on stderr and nothing else, inside the context's deadline."""
    assert r.code == 0, f"{source.kind}, {context}: exit {r.code}; stderr: {r.err}"
    assert r.stdout.endswith(b"\n"), r.stdout[-40:]
    assert r.stdout.count(b"\n") == 1, "more than one line on stdout"
    value = r.stdout[:-1].decode()
    source.check_credential(value)
    lines = r.err.splitlines()
    assert len(lines) == warnings, r.err
    assert all(line.startswith("gatekey: warning: ") for line in lines), r.err
    assert r.elapsed < ends_by(deadline_of(context)), f"{r.elapsed:.1f} s in {context}"
    return value


def failed(r: Result, failure: Failure, context: str | None) -> str:
    """A clean failure: the code, nothing on stdout, one ``gatekey:`` line holding one of the
    failure's words, no traceback, inside the context's deadline."""
    assert r.code == failure.code, f"exit {r.code}, expected {failure.code}; stderr: {r.err}"
    assert r.stdout == b"", r.stdout
    lines = r.err.splitlines()
    assert len(lines) == 1, r.err
    assert r.err.endswith("\n"), r.err
    assert lines[0].startswith("gatekey: "), r.err
    assert any(word in lines[0] for word in failure.words), (failure.words, lines[0])
    assert r.elapsed < ends_by(deadline_of(context)), f"{r.elapsed:.1f} s in {context}"
    return lines[0]


def doctor_line(source: Adapter, r: Result, check: str) -> str:
    """Doctor's line for ``check``: ``VERDICT  check  detail``."""
    for line in r.stdout.decode().splitlines():
        words = line.split(None, 2)
        if len(words) == 3 and words[1] == check:
            return line
    raise AssertionError(f"{source.kind}: no {check} line in doctor's output:\n{r.stdout!r}")


# --- the contract ------------------------------------------------------------------------------
def test_every_kind_runs_the_contract() -> None:
    """Every built-in kind and every installed plugin kind has an adapter; the plugin kinds are
    registered by entry point, not built in."""
    assert set(sources.BUILTIN) | set(sources.plugins()) == set(ADAPTERS)
    points = {ep.name: ep.value for ep in metadata.entry_points(group="gatekey.sources")}
    for kind in ("token-file", "token-file-bare"):
        assert kind not in sources.BUILTIN
        assert points[kind].startswith("gatekey_token_file:"), points


def test_prints_the_credential_in_every_context(source: Adapter) -> None:
    """Each context (and none) with a cache of its own: each run asks the source. The kind's
    family executable (gatekey-vault, gatekey-idp, gatekey-keychain) serves it as well."""
    runs = {ctx or "unset": (ctx, source.fresh_cache(ctx or "unset")) for ctx in (None, *CONTEXTS)}
    for name, r in run_together(source, runs).items():
        printed(source, r, runs[name][0])
    family = f"gatekey-{source.spec.family}"
    r = source.gk.run(exe_name=family, context="background", **source.fresh_cache(family))
    printed(source, r, "background")


def mistakes(source: Adapter) -> dict[str, Mistake]:
    """Bad configs of the kind's working profile, made from its spec: a misspelt key, the
    first required key left out, the first string key given a number, and the kind's own."""
    keys: dict[str, KeySpec] = source.spec.keys
    working = source.profile()
    name = next(iter(k for k in keys if k in working), next(iter(keys)))
    value = working.get(name, keys[name].default or "x")
    at = next(i for i in range(len(name) - 1) if name[i] != name[i + 1])
    misspelt = name[:at] + name[at + 1] + name[at] + name[at + 2 :]  # two letters swapped
    made = {"misspelt": Mistake({name: None, misspelt: value}, misspelt, (f"mean '{name}'",))}
    required = [k for k, spec in keys.items() if spec.required]
    if required:
        made["missing"] = Mistake({required[0]: None}, required[0], ("missing required key",))
    string = next(k for k, spec in keys.items() if spec.type == "str")
    made["wrong type"] = Mistake({string: 7}, string, ("expected a string",))
    own = source.own_mistake()
    if own is not None:
        made["own"] = own
    return made


def test_a_bad_config_names_file_profile_and_key(source: Adapter) -> None:
    """Each mistake in a config file of its own, in a silent context."""
    runs, files = {}, {}
    for case, mistake in mistakes(source).items():
        keys = {"source": source.kind, **source.profile(), **mistake.overrides}
        path = source.tmp / f"bad-{case.replace(' ', '-')}.toml"
        profiles = {PROFILE: {k: v for k, v in keys.items() if v is not None}}
        path.write_text(config_toml({**profiles, **source.other_profiles()}))
        files[case] = path
        runs[case] = ("background", {"GATEKEY_CONFIG": str(path)})
    made = mistakes(source)
    for case, r in run_together(source, runs).items():
        where = f'gatekey: {files[case]}: profile "{PROFILE}": key "{made[case].key}": '
        assert r.code == 78, f"{case}: exit {r.code}; stderr: {r.err}"
        assert r.stdout == b"", r.stdout
        assert r.err.startswith(where), f"{case}: {r.err}"
        assert r.err.count("\n") == 1, f"{case}: {r.err}"
        assert all(word in r.err for word in made[case].words), (case, made[case].words, r.err)


def test_an_unreachable_source_fails_cleanly(source: Adapter) -> None:
    """Nothing cached, nothing answering: background and mid-session-refresh together, each
    with a new cache; then doctor's source check fails."""
    source.write(**source.unreachable())
    runs = {ctx: (ctx, source.fresh_cache(ctx)) for ctx in ("background", "mid-session-refresh")}
    for ctx, r in run_together(source, runs).items():
        failed(r, source.unreachable_failure, ctx)
    doctor = source.gk.run("doctor", "-p", PROFILE)
    assert doctor.code == 1, doctor.err
    line = doctor_line(source, doctor, "source")
    if not kinds.capable(source.spec, kinds.Probing):
        assert line.startswith("SKIP "), line
    elif source.probe_reaches_source:
        assert line.startswith("FAIL "), line
    else:  # the probe looks at this machine only: the token check is what asks the source
        assert doctor_line(source, doctor, "token").startswith("FAIL "), doctor.stdout


def test_the_cached_credential_outlives_its_source(source: Adapter) -> None:
    """After a success the source goes away. Within the token's life a run prints the cached
    credential: silently while fresh; once due for a refresh, with one warning, in background
    and in mid-session-refresh (which never reprints a copy older than a minute unasked)."""
    value = printed(source, source.gk.run(context="background"), "background")
    source.go_away()
    if not source.spec.file_cache:  # the keychain: a store itself, never cached by gatekey
        r = source.gk.run(context="background")
        failed(r, source.unreachable_failure, "background")
        return
    hit = source.gk.run(context="background")
    assert printed(source, hit, "background") == value
    source.make_due()
    runs = {ctx: (ctx, {}) for ctx in ("background", "mid-session-refresh")}
    for ctx, r in run_together(source, runs).items():
        assert printed(source, r, ctx, warnings=1) == value
        assert "could not refresh" in r.err, r.err


def test_status_lists_the_kind_and_its_storage(source: Adapter) -> None:
    """After a success, status's table has the profile's row: its kind, its cache state
    (``fresh``; for a kind gatekey does not cache, ``stored`` when the kind can tell
    (kinds.Holding), else ``n/a``) and where it is kept."""
    printed(source, source.gk.run(context="background"), "background")
    r = source.gk.run("status")
    assert r.code == 0, r.err
    header, *lines = r.out.split("\n\n", 1)[0].splitlines()  # notes follow a blank line
    [row] = [line for line in lines if line[2:].split()[:1] == [PROFILE]]  # after the marker
    kind, state = row[2:].split()[1:3]
    assert kind == source.kind, row
    held = "stored" if kinds.capable(source.spec, kinds.Holding) else "n/a"
    assert state == ("fresh" if source.spec.file_cache else held), row
    storage = row[header.index("STORAGE") :]
    assert all(word in storage for word in source.storage_words), (source.storage_words, row)


def test_doctor_prints_the_kinds_probe(source: Adapter) -> None:
    """A working profile: the source line is the kind's probe (SKIP for a kind without one),
    and the token check obtains a credential silently. (Not every check passes: with the app's
    default TTL, doctor's ttl check rightly fails a provider's 60-minute tokens.)"""
    r = source.gk.run("doctor", "-p", PROFILE)
    assert "Traceback" not in r.err, r.err
    assert doctor_line(source, r, "token").startswith("OK "), r.stdout
    line = doctor_line(source, r, "source")
    if kinds.capable(source.spec, kinds.Probing):
        assert line.startswith("OK "), line
        assert all(word in line for word in source.probe_words), (source.probe_words, line)
    else:
        assert line.startswith("SKIP "), line
        assert "no reachability probe" in line, line


def test_secret_hygiene(source: Adapter, secret_hygiene: Recorder) -> None:
    """Every test here is checked by the suite's hygiene checker with the kind's secrets
    registered (the ``source`` fixture). This one logs at debug level, the most gatekey ever
    says, for a success and (the source gone) a failure or fallback: nothing leaks, and each
    secret, the credential printed included, is registered, so a leak would be caught."""
    r = source.gk.run(context="background", GATEKEY_LOG_LEVEL="debug")
    assert r.code == 0, r.err
    value = r.stdout.decode().removesuffix("\n")
    source.check_credential(value)
    source.go_away()
    source.gk.run("--debug", "get", "--force-refresh", context="background")
    assert secret_hygiene.findings() == []
    for secret in [value, *source.secrets()]:
        assert secret in secret_hygiene.secrets, "a secret of this kind is not registered"
        leak = Recorder()
        leak.secrets = dict(secret_hygiene.secrets)
        leak.runs.append(Run(["gatekey"], {}, None, b"", f"gatekey: {secret}\n".encode(), 1))
        assert leak.findings(), "the hygiene checker would not catch this kind's secret"
