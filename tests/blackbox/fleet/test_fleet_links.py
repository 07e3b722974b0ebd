"""``mdm --gatekey-config`` emits every profile a chosen one gets a credential through: the links
its kind declares (a vault's auth.jwt_from, a Key Vault's credential_from) and its
{ keychain = ... } secret references, at any depth. A profile left out would make the fleet's
config invalid on every machine (the reference names a profile that does not exist)."""

from __future__ import annotations

import pytest

CONFIG = """
[profiles.vault-token]
source = "vault"
address = "https://vault.example.com"
path = "llm"
auth = { method = "token", token = { keychain = "vault-token-entry" } }

[profiles.vault-approle]
source = "vault"
address = "https://vault.example.com"
path = "llm"
auth = { method = "approle", role_id = "r-1", secret_id = { keychain = "approle-entry" } }

[profiles.robot]
source = "oidc"
issuer = "https://idp.example.com/realm"
client_id = "robot"
flow = "client-credentials"
client_secret = { keychain = "robot-entry" }

[profiles.kv]
source = "azure-key-vault"
vault_url = "https://corp.vault.azure.net"
secret_name = "llm"
credential_from = "entra"

[profiles.entra]
source = "entra"
tenant = "contoso.onmicrosoft.com"
client_id = "c-1"
client_secret = { keychain = "entra-entry" }
flow = "client-credentials"

[profiles.vault-token-entry]
source = "keychain"
[profiles.approle-entry]
source = "keychain"
[profiles.robot-entry]
source = "keychain"
[profiles.entra-entry]
source = "keychain"
[profiles.unrelated]
source = "keychain"
"""


@pytest.mark.parametrize(
    ("chosen", "linked"),
    [
        ("vault-token", ["vault-token-entry"]),
        ("vault-approle", ["approle-entry"]),
        ("robot", ["robot-entry"]),
        ("kv", ["entra", "entra-entry"]),  # a link, then that profile's reference
    ],
)
def test_gatekey_config_keeps_every_profile_a_profile_uses(gk, chosen, linked):
    gk.write_config(CONFIG)
    result = gk.run("mdm", "--gatekey-config", "-p", chosen)
    assert result.code == 0, result.err
    emitted = {
        line[len("[profiles.") : -1]
        for line in result.out.splitlines()
        if line.startswith("[profiles.")
    }
    assert emitted == {chosen, *linked}
    # The emitted text alone is a valid config that selects the chosen profile.
    only = gk.root / "only.toml"
    only.write_text(result.out)
    shown = gk.run("config", "validate", GATEKEY_CONFIG=str(only))
    assert shown.code == 0, shown.err
