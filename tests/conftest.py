"""Shared fixtures: isolated environments, the installed executables, real peers.

Every test runs gatekey the way the app does: the installed console script, as a subprocess, no
arguments unless the test is about the CLI, stdin closed, a private HOME / config / cache.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))
import hygiene
from blackbox_env import SUPPORT, Env
from oidc_peer import ENTRA_TENANT, OidcProvider, make_tls
from oidc_peer import missing_tools as oidc_missing_tools
from peers import SecretService, isolated_env


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
