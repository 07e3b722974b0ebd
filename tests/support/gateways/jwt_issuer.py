"""A minimal token issuer for the peers' own tests: an HTTPS OpenID discovery document and JWKS
at ``https://127.0.0.1:P/iss`` (what jwt_gateway.py fetches), and ``sign`` for tokens with
exactly the claims a test wants. Its key is made per issuer; ``foreign`` signs with a key the
issuer never published (a forged token). test_jwt_gateway_peer.py publishes keys of its own
(``published``) to prove key rotation.

The gateway tests proper use the real OpenID provider (oidc_peer.py); this one keeps the peer
tests free of node and quick.
"""

from __future__ import annotations

import functools
import json
import time
from typing import Any

from gateways.serving import LocalServer, QuietHandler

AUDIENCE = "https://api.example.test"
KID = "peer-key"


def new_key() -> Any:
    """An RSA signing key (cryptography's RSAPrivateKey)."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class _Handler(QuietHandler):
    server: Any  # its owner: Issuer

    def do_GET(self) -> None:
        owner = self.server.owner
        if self.path == "/iss/.well-known/openid-configuration":
            self.send_json(200, {"issuer": owner.issuer, "jwks_uri": f"{owner.issuer}/jwks"})
        elif self.path == "/iss/jwks":
            owner.jwks_fetches += 1
            self.send_json(200, {"keys": [owner.jwk(kid) for kid in list(owner.published)]})
        else:
            self.send_error(404)


class Issuer(LocalServer):
    """Use as a context manager; ``issuer`` is its URL, ``ca`` the CA its certificate chains to.
    Its JWKS publishes ``published`` (kid: key; a test may add keys: rotation), at first ``key``
    (made here unless given) as ``kid``; ``jwks_fetches`` counts the JWKS requests."""

    def __init__(self, tls: dict[str, str], *, key: Any = None, kid: str = KID) -> None:
        self.key = key if key is not None else new_key()
        self.kid = kid
        self.published: dict[str, Any] = {kid: self.key}
        self.jwks_fetches = 0
        self.ca = tls["ca"]
        super().__init__(_Handler, tls=tls)
        self.issuer = f"{self.url}/iss"

    @functools.cached_property
    def other(self) -> Any:
        """A key this issuer never publishes (made on first use)."""
        return new_key()

    def jwk(self, kid: str = KID) -> dict[str, Any]:
        import jwt

        public = self.published[kid].public_key()
        jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
        return dict(jwk, kid=kid, use="sig", alg="RS256")

    def sign(self, *, foreign: bool = False, lifetime: int = 600, **claims: object) -> str:
        """A token for AUDIENCE, subject alice, ``lifetime`` seconds; ``claims`` override."""
        import jwt

        now = int(time.time())
        body: dict[str, object] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": "alice",
            "iat": now,
            "exp": now + lifetime,
            **claims,
        }
        key = self.other if foreign else self.key
        return jwt.encode(body, key, algorithm="RS256", headers={"kid": self.kid})
