"""LiteLLM's ``general_settings.custom_auth`` hook verifying OpenID access tokens (JWTs).

LiteLLM's own JWT auth (``enable_jwt_auth``) is an enterprise feature (403 "JWT Auth is an
enterprise only feature" without a licence); this open-source hook does what an in-house gateway
does: the signature against the issuer's JWKS (fetched over HTTPS), ``iss``, ``aud``, ``exp`` and
``nbf`` with no leeway. It runs inside LiteLLM's own venv (PyJWT comes with ``litellm[proxy]``);
the gateway tests load it from custom-auth.yaml, which sits beside it. Settings, from the
environment: ``JWT_ISSUER``, ``JWT_AUDIENCE``, ``JWT_JWKS_URL`` and ``JWT_CA_FILE`` (the CA the
JWKS server's certificate chains to; the system's when unset).

A refused token raises fastapi's HTTPException(401): LiteLLM answers 401 with the reason, which
names the check that failed (never the token). Any other exception becomes a 500 here, since
LiteLLM first asks whether it came from its database, and without Prisma installed that question
itself fails. An admin can copy this file as it is, with their provider's values in those variables.
"""

from __future__ import annotations

import asyncio
import os
import ssl

import jwt
from fastapi import HTTPException, Request
from litellm.proxy._types import UserAPIKeyAuth

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384"]
ISSUER = os.environ["JWT_ISSUER"]
AUDIENCE = os.environ["JWT_AUDIENCE"]
_TLS = ssl.create_default_context(cafile=os.environ.get("JWT_CA_FILE") or None)
_JWKS = jwt.PyJWKClient(os.environ["JWT_JWKS_URL"], timeout=10, ssl_context=_TLS)


def _verify(token: str) -> dict[str, object]:
    key = _JWKS.get_signing_key_from_jwt(token)
    claims: dict[str, object] = jwt.decode(
        token,
        key.key,
        algorithms=ALGORITHMS,
        audience=AUDIENCE,
        issuer=ISSUER,
        leeway=0,
        options={"require": ["exp", "iss", "aud", "sub"]},
    )
    return claims


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    """LiteLLM passes the credential from ``Authorization: Bearer`` or ``x-api-key``."""
    token = (api_key or "").removeprefix("Bearer ").strip()
    if not token:
        raise HTTPException(status_code=401, detail="no bearer token")
    try:
        # PyJWKClient fetches with urllib (blocking): off the event loop.
        claims = await asyncio.to_thread(_verify, token)
    except jwt.PyJWTError as e:
        raise HTTPException(status_code=401, detail=f"invalid token: {e}") from None
    return UserAPIKeyAuth(user_id=str(claims["sub"]), api_key=f"jwt:{claims['sub']}")
