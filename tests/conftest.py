"""Shared fixtures: isolated environments, the installed executables, real peers.

Every test runs gatekey the way the app does: the installed console script, as a subprocess, no
arguments unless the test is about the CLI, stdin closed, a private HOME / config / cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))
import hygiene
from deadlines import HARNESS_S
from oidc_peer import ENTRA_TENANT, OidcProvider, make_tls
from oidc_peer import missing_tools as oidc_missing_tools
from peers import SecretService, isolated_env

BIN = Path(sys.executable).parent
SUPPORT = Path(__file__).parent / "support"
COUNTING_SOURCE = SUPPORT / "counting_source.py"
CONTEXTS = ("interactive", "mid-session-refresh", "scheduled-task", "setup-test", "background")
SILENT_CONTEXTS = CONTEXTS[1:]


def exe(name: str = "gatekey") -> str:
    path = BIN / name
    assert path.exists(), f"{path} is not installed; run the README's test command"
    return str(path)


@dataclass
class Result:
    argv: list[str]
    code: int
    stdout: bytes
    stderr: bytes
    elapsed: float

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    def assert_clean_failure(self, code: int) -> None:
        """A failure per the contract: the code, empty stdout, one stderr line, no traceback."""
        assert self.code == code, f"exit {self.code}, expected {code}; stderr: {self.err}"
        assert self.stdout == b"", f"stdout must be empty on failure, got {self.stdout!r}"
        assert "Traceback" not in self.err, self.err
        assert self.err.startswith("gatekey: "), self.err
        assert self.err.endswith("\n")


@dataclass
class Env:
    """A private environment for gatekey runs: HOME, XDG dirs, config and cache in tmp_path."""

    root: Path
    vars: dict[str, str] = field(default_factory=dict)
    # What successful runs printed: the run log must never contain any of it (see runlog_clean).
    printed: list[bytes] = field(default_factory=list)

    @property
    def run_log(self) -> Path:
        """Every test's config logs its runs here (unless it sets log_file itself)."""
        return self.root / "gatekey-runs.jsonl"

    @property
    def cache_dir(self) -> Path:
        return Path(self.vars["GATEKEY_CACHE_DIR"])

    @property
    def config_path(self) -> Path:
        return self.root / "config.toml"

    def write_config(self, text: str, *, run_log: bool = True) -> Path:
        if run_log and "log_file" not in text:
            text = f'log_file = "{self.run_log}"\n' + text
        self.config_path.write_text(text)
        self.vars["GATEKEY_CONFIG"] = str(self.config_path)
        return self.config_path

    def counting_profile(self, name: str = "cmd", extra: str = "", *, secure: bool = False) -> str:
        """TOML for a `command` profile running the counting source (see support/).

        Its tokens go to the file cache (``allow_insecure_cache``), where the cache-core tests
        inspect and age them; ``secure=True`` keeps the vault default (kernel keyring +
        keychain, tests/test_secure_cache.py)."""
        return (
            f'[profiles.{name}]\nsource = "command"\n'
            f'command = ["{sys.executable}", "{COUNTING_SOURCE}"]\n'
            'parse = "json"\ntoken_path = "access_token"\nexpires_in_path = "expires_in"\n'
            + ("" if secure else "allow_insecure_cache = true\n")
            + f"{extra}\n"
        )

    def entry_path(self) -> Path:
        """The (only) cached token file."""
        files = sorted((self.cache_dir / "tokens").glob("*.json"))
        assert len(files) == 1, f"expected one cache entry, found {files}"
        return files[0]

    def edit_entry(self, **fields: float) -> None:
        """Rewrite fields of the (only) cached token, atomically, as time passing would."""
        path = self.entry_path()
        data = json.loads(path.read_text())
        data.update(fields)
        tmp = path.with_name(path.name + ".edit")
        tmp.write_text(json.dumps(data))
        tmp.chmod(0o600)
        os.replace(tmp, path)

    def forget_failures(self) -> None:
        """As if the backoff had passed: drop gatekey's remembered source failures."""
        for path in (self.cache_dir / "failures").glob("*.json"):
            path.unlink()

    def msal_path(self) -> Path:
        """MSAL's state file of the (only) signed-in profile with token_cache = "file"."""
        files = sorted((self.cache_dir / "msal").glob("*.json"))
        assert len(files) == 1, f"expected one MSAL state file, found {files}"
        return files[0]

    def run_together(
        self, contexts: list[str | None], *args: str, timeout: float = HARNESS_S, **extra: str
    ) -> list[tuple[int, bytes, bytes, float]]:
        """Start one gatekey per entry of ``contexts`` at once, then wait for all of them:
        (exit code, stdout, stderr, seconds from the first start to this one's end)."""
        procs = []
        t0 = time.monotonic()
        for ctx in contexts:
            env = dict(self.vars, **extra)
            if ctx is not None:
                env["CLAUDE_HELPER_CONTEXT"] = ctx
            procs.append(
                subprocess.Popen(
                    [exe(), *args],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=env,
                    cwd=self.root,
                )
            )
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            results.append((proc.returncode, out, err, time.monotonic() - t0))
        return results

    def count(self) -> int:
        path = Path(self.vars["COUNT_FILE"])
        return len(path.read_text().splitlines()) if path.exists() else 0

    def run(
        self,
        *args: str,
        exe_name: str = "gatekey",
        context: str | None = None,
        stdin: bytes | None = None,
        timeout: float = HARNESS_S,
        **extra: str,
    ) -> Result:
        env = dict(self.vars, **extra)
        if context is not None:
            env["CLAUDE_HELPER_CONTEXT"] = context
        argv = [exe(exe_name), *args]
        t0 = time.monotonic()
        proc = subprocess.run(
            argv,
            input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            capture_output=True,
            env=env,
            timeout=timeout,
            cwd=self.root,
        )
        commands = [a for a in args if not a.startswith("-")]
        if proc.returncode == 0 and (not commands or commands[0] == "get"):
            self.printed.append(proc.stdout)  # a credential (helper runs and `get` only)
        return Result(argv, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0)


def _base_env(root: Path) -> dict[str, str]:
    return dict(
        isolated_env(root),
        COUNT_FILE=str(root / "count.txt"),
        PYTHONPATH=str(SUPPORT),  # also loads support/sitecustomize.py: argv to the log below
        **{hygiene.ARGV_LOG: str(root / "argv.log")},
    )


# --- secret hygiene, suite-wide (support/hygiene.py) --------------------------------------------
hygiene.install()


@pytest.fixture(autouse=True)
def secret_hygiene(request: pytest.FixtureRequest) -> Iterator[hygiene.Recorder]:
    """Every test: record its subprocesses, then find any registered secret (raw, base64,
    base64url, URL-encoded) where none may be: gatekey's stderr, its stdout but for a payload,
    argv (gatekey's and its children's), run logs, cache file names. Tests may register more
    secrets with ``secret_hygiene.register(value, origin)``."""
    recorder = hygiene.Recorder()
    hygiene.current = recorder
    yield recorder
    hygiene.current = None
    findings = recorder.findings()
    request.node.user_properties.extend(
        [
            ("hygiene_runs", len(recorder.runs)),
            ("hygiene_secrets", len(recorder.secrets)),
            ("hygiene_findings", len(findings)),
        ]
    )
    if findings:
        pytest.fail("secret hygiene:\n" + "\n".join(findings), pytrace=False)


@pytest.fixture
def gk(tmp_path: Path) -> Iterator[Env]:
    """A private gatekey environment with no config file and no D-Bus session bus.

    Its configs log every run (log_file); afterwards the log must hold none of what the runs
    printed: no token, nor any 12-character piece of one, ever reaches the run log."""
    env = Env(tmp_path, _base_env(tmp_path))
    yield env
    if env.run_log.is_file():
        log = env.run_log.read_text(errors="replace")
        for printed in env.printed:
            for token in printed.decode("utf-8", "replace").split():
                for start in range(0, max(len(token) - 11, 0), 4):
                    piece = token[start : start + 12]
                    assert piece not in log, f"a piece of a printed credential is in {env.run_log}"


# --- the real Secret Service (gnome-keyring on a private D-Bus) ------------------------------
@pytest.fixture
def secret_service(gk: Env) -> Iterator[Env]:
    """gnome-keyring's Secret Service on a private session bus, unlocked, in the test's HOME."""
    missing = SecretService.missing_tools()
    if missing:
        pytest.fail(f"{missing} not installed; run the README's test command (it installs them)")
    service = SecretService(gk.vars)
    gk.vars["DBUS_SESSION_BUS_ADDRESS"] = service.start()
    yield gk
    service.stop()


# --- the real OpenID provider (node-oidc-provider over HTTPS; see support/oidc_peer.py) -------
@pytest.fixture(scope="session")
def oidc_tls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """PEM paths ``ca``, ``cert``, ``key``: a throwaway CA and a leaf for 127.0.0.1/localhost."""
    return make_tls(tmp_path_factory.mktemp("oidc-tls"))


def start_oidc_provider(tls: dict[str, str], log_dir: Path, **env: str) -> OidcProvider:
    missing = oidc_missing_tools()
    if missing:
        pytest.fail(f"{missing} not installed; run the README's test command (it installs them)")
    return OidcProvider(tls, log_dir, env)


@pytest.fixture(scope="session")
def oidc_provider(
    oidc_tls: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OidcProvider]:
    """A provider at issuer ``https://127.0.0.1:<port>/oidc`` whose users sign in through its
    HTML forms (devInteractions): ``oidc_peer.approve`` submits them. Shared by the session."""
    provider = start_oidc_provider(oidc_tls, tmp_path_factory.mktemp("oidc-provider"))
    yield provider
    provider.stop()


@pytest.fixture(scope="session")
def oidc_provider_auto(
    oidc_tls: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OidcProvider]:
    """Like ``oidc_provider`` with AUTO_LOGIN=1: sign-in and consent as alice with no forms."""
    provider = start_oidc_provider(
        oidc_tls, tmp_path_factory.mktemp("oidc-provider-auto"), AUTO_LOGIN="1"
    )
    yield provider
    provider.stop()


@pytest.fixture(scope="session")
def entra_provider(
    oidc_tls: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OidcProvider]:
    """An Entra-style issuer ``https://127.0.0.1:<port>/<tenant>/v2.0``; ``.authority`` is
    ``https://127.0.0.1:<port>/<tenant>`` (MSAL: ``instance_discovery=False``), ``.tenant``."""
    provider = start_oidc_provider(
        oidc_tls, tmp_path_factory.mktemp("entra-provider"), ISSUER_PATH=f"/{ENTRA_TENANT}/v2.0"
    )
    yield provider
    provider.stop()


@pytest.fixture
def make_oidc_provider(
    oidc_tls: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., OidcProvider]]:
    """A factory: ``make_oidc_provider(AUTO_LOGIN="1", AT_TTL="400", ...)`` starts a new provider
    (env as in server.mjs); every provider it started is stopped when the test ends."""
    started: list[OidcProvider] = []

    def make(**env: str) -> OidcProvider:
        provider = start_oidc_provider(oidc_tls, tmp_path / f"oidc-{len(started)}", **env)
        started.append(provider)
        return provider

    yield make
    for provider in started:
        provider.stop()


@pytest.fixture
def fresh_oidc_provider(
    request: pytest.FixtureRequest, make_oidc_provider: Callable[..., OidcProvider]
) -> OidcProvider:
    """A new provider for this test only (clean grants; safe to revoke or replay tokens).
    Its env comes from indirect parametrization:
    ``@pytest.mark.parametrize("fresh_oidc_provider", [{"AT_TTL": "400"}], indirect=True)``."""
    env: dict[str, str] = getattr(request, "param", None) or {}
    return make_oidc_provider(**env)
