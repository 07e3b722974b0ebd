"""Every source kind with a ``ca_bundle`` key refuses an unusable one as the profile's error.

The check (gatekey.tls.check_ca_bundle) runs when the source is built, before any request: exit
78 with one line naming ``ca_bundle``, and nothing is contacted. The IdP kinds are covered with a
real provider in test_idp_resilience.py; these are the vault kinds, whose check is imported
inside their constructors (an import that only a run would find broken).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from blackbox_env import Env

pytestmark = pytest.mark.blackbox

BAD = ("missing", "directory", "not-pem")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A port that would see a connection if the source tried to reach its server."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock
    sock.close()


def unusable_bundle(gk: Env, bad: str) -> str:
    path = gk.root / "ca.pem"
    if bad == "directory":
        path.mkdir()
    elif bad == "not-pem":
        path.write_text("not a certificate\n")
    return str(path)


def vault(origin: str, ca: str) -> str:
    return (
        f'[profiles.p]\nsource = "vault"\naddress = "{origin}"\npath = "app"\nca_bundle = "{ca}"\n'
    )


def azure_key_vault(origin: str, ca: str) -> str:
    return (
        f'[profiles.p]\nsource = "azure-key-vault"\nvault_url = "{origin}"\n'
        f'secret_name = "db-pass"\ncredential_from = "azure-cli"\nca_bundle = "{ca}"\n'
    )


@pytest.mark.parametrize("profile", [vault, azure_key_vault], ids=["vault", "azure-key-vault"])
@pytest.mark.parametrize("bad", BAD)
def test_an_unusable_ca_bundle_is_the_profiles_error(
    gk: Env, listener: socket.socket, profile, bad: str
):
    origin = f"https://127.0.0.1:{listener.getsockname()[1]}"
    gk.write_config(profile(origin, unusable_bundle(gk, bad)))
    for ctx in ("background", "interactive"):
        r = gk.run(context=ctx)
        r.assert_clean_failure(78)
        assert r.err.count("\n") == 1, r.err
        assert "ca_bundle" in r.err, r.err
        assert "PEM file of CA certificates" in r.err, r.err
    listener.settimeout(0.2)
    with pytest.raises(TimeoutError):
        listener.accept()  # nobody tried to connect
