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


# --- which protocol a port speaks (doctor, when a handshake or a request fails) ----------------
# OpenSSL's reasons when a TLS client meets a server that is not speaking TLS (plain HTTP's
# "HTTP/1.1 400" read as a TLS record header): OpenSSL 1.1 to 3.1 say WRONG_VERSION_NUMBER, 3.2
# and later RECORD_LAYER_FAILURE or PACKET_LENGTH_TOO_LONG, LibreSSL UNKNOWN_PROTOCOL.
NOT_TLS_REASONS = frozenset(
    {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "UNKNOWN_PROTOCOL"}
)
_PROBE_READ = 64  # bytes of a plain-HTTP answer needed to recognise it


def answers_plain_http(host: str, port: int, timeout: float) -> bool:
    """Whether ``host:port`` answers a bare ``HEAD /`` in plain HTTP: the bytes that broke a
    TLS handshake, confirmed. Nothing but the host name is sent (no credential, no path)."""
    import socket

    request = f"HEAD / HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(request)
            first = sock.recv(_PROBE_READ)
    except OSError:
        return False
    return first.startswith(b"HTTP/")


def speaks_tls(host: str, port: int, timeout: float) -> bool:
    """Whether ``host:port`` answers a TLS ClientHello in TLS (a handshake, or a TLS alert).
    Identity is not checked (nothing is sent after the handshake): this only tells the protocol."""
    import socket
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the protocol only; no request follows
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as sock,
            context.wrap_socket(sock, server_hostname=host),
        ):
            return True
    except ssl.SSLError as e:
        # An alert is a TLS answer (the server refused our hello or wants a client certificate).
        return "ALERT" in str(e.reason or "")
    except OSError:
        return False
