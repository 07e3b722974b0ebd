"""A minimal token issuer for the peers' own tests: an HTTPS OpenID discovery document and JWKS
at ``https://127.0.0.1:P/iss`` (what jwt_gateway.py fetches), and ``sign`` for tokens with
exactly the claims a test wants. Its key is made per issuer; ``foreign`` signs with a key the
issuer never published (a forged token).

The gateway tests proper use the real OpenID provider (oidc_peer.py); this one keeps the peer
tests free of node and quick.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

AUDIENCE = "https://api.example.test"
KID = "peer-key"


class Issuer:
    """Use as a context manager; ``issuer`` is its URL, ``ca`` the CA its certificate chains to."""

    def __init__(self, tls: dict[str, str]) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/iss/.well-known/openid-configuration":
                    body: object = {"issuer": owner.issuer, "jwks_uri": f"{owner.issuer}/jwks"}
                elif self.path == "/iss/jwks":
                    body = {"keys": [owner.jwk()]}
                else:
                    self.send_error(404)
                    return
                content = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

        self.ca = tls["ca"]
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls["cert"], tls["key"])
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.issuer = f"https://127.0.0.1:{self.server.server_address[1]}/iss"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def jwk(self) -> dict[str, Any]:
        import jwt

        public = self.key.public_key()
        jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
        return dict(jwk, kid=KID, use="sig", alg="RS256")

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
        return jwt.encode(body, key, algorithm="RS256", headers={"kid": KID})

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Issuer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
