"""Identity-provider sources, ``entra`` and ``oidc``, on MSAL (the factory of both kinds is
``gatekey.sources.idp:IdpSource``). One concern a module, each importing only those above it:

    settings      the profile, checked: flow, scopes, authority, extra parameters, certificates
    results       MSAL's answers (dicts) turned into a Token or one of our errors
    msal_state    the saved sign-in (MSAL's token cache) in the keychain or a 0600 file, its lock
    public        MSAL's public client: built from the saved sign-in, refreshed silently
    signin        a person signs in: the browser (loopback or broker) or a device code
    confidential  client credentials (a secret or a certificate), no person
    managed       Azure managed identity through MSAL (also Key Vault's credential)
    checks        what the diagnostics ask: probe, sign-in state, what its tokens should say
    source        IdpSource: the flows in order, each step delegated to the modules above
"""

from gatekey.sources.idp.source import IdpSource

__all__ = ["IdpSource"]
