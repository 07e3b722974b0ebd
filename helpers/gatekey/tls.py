"""TLS settings a profile names, checked when the profile is read. Standard library only.

Every source that talks HTTPS may name a ``ca_bundle``: extra CA certificates beside the OS trust
store (gatekey.http loads it). A bad path or file is the profile's error, found before any request
is made, not a TLS failure on the first one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gatekey.errors import ConfigError

if TYPE_CHECKING:
    from gatekey.kinds import Profile


def check_ca_bundle(path: str, profile: Profile) -> None:
    """A ca_bundle must be a readable PEM file of certificates (checked before any request)."""
    import ssl

    try:
        # An empty context: loading the OS store too (create_default_context) costs ~25 ms.
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=path)
    except (OSError, ssl.SSLError, ValueError) as e:
        why = "no such file" if isinstance(e, FileNotFoundError) else type(e).__name__
        raise ConfigError(
            f"{path} is not a readable PEM file of CA certificates ({why})",
            file=profile.origins.get("ca_bundle"),
            profile=profile.name,
            key="ca_bundle",
        ) from None
