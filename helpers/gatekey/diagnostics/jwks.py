"""``gatekey inspect --verify``: a JWT's signature against the keys its issuer publishes.

The keys come from the issuer's OpenID discovery document (``jwks_uri``), fetched afresh with the
profile's TLS settings and never cached: inspect keeps no state of its own. Only public-key
signatures can be checked this way; a shared-secret (HS*) one, or a Microsoft Graph token
(signed over a nonce), cannot, and the check says why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gatekey.checks import Check
from gatekey.errors import HelperError

if TYPE_CHECKING:
    from gatekey.context import RunContext

# Signatures a gateway can check with the issuer's published (public) keys.
PUBLIC_KEY_ALGS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


def verify(
    value: str,
    kind: str,
    header: dict[str, Any],
    claims: dict[str, Any],
    ca_bundle: str | None,
    run: RunContext,
) -> tuple[Check, dict[str, Any]]:
    """The "signature" check of a decoded token (``kind``: see inspect.Report), and what was
    found on the way (alg, kid, the JWKS URI, whether the kid is there, valid, detail)."""
    alg, kid = header.get("alg"), header.get("kid")
    info: dict[str, Any] = {"alg": alg, "kid": kid, "jwks_uri": None, "kid_found": None}

    def result(verdict_word: str, detail: str) -> tuple[Check, dict[str, Any]]:
        info.update(valid=verdict_word == "ok", detail=detail)
        return Check("signature", verdict_word, detail), info

    if kind == "malformed":
        return result("skip", "not checked: the token does not decode (see format)")
    if kind != "jwt":
        what = "an encrypted (JWE)" if kind == "jwe" else "an opaque"
        return result("skip", f"{what} token has no signature gatekey can check")
    if alg not in PUBLIC_KEY_ALGS:
        return result("fail", f"alg {alg} cannot be checked against the issuer's published keys")
    if "nonce" in header:
        return result(
            "fail", "signed over a nonce (a Microsoft Graph token): only Graph can verify it"
        )
    iss = claims.get("iss")
    if not isinstance(iss, str) or not iss.lower().startswith("https://"):
        return result("fail", "no https iss claim, so no issuer keys to check against")
    try:
        keys, info["jwks_uri"] = _issuer_keys(iss, run, ca_bundle)
    except HelperError as e:
        return result("fail", f"could not get the issuer's keys: {e}")
    candidates = [k for k in keys if k.get("kid") == kid] if kid else keys
    info["kid_found"] = bool(candidates) if kid else None
    if not candidates:
        return result(
            "fail",
            f"kid {kid} is not among the {len(keys)} key(s) at {info['jwks_uri']}: "
            "not signed by this issuer, or its keys rotated",
        )
    import jwt

    other_algs = {str(k["alg"]) for k in candidates if k.get("alg") not in (None, alg)}
    for jwk in candidates:
        if jwk.get("alg") not in (None, alg):
            continue
        try:
            key = jwt.PyJWK(jwk, algorithm=str(alg))
            jwt.PyJWS().decode_complete(value, key=key, algorithms=[str(alg)])
        except jwt.PyJWTError:
            continue
        which = f"key {kid}" if kid else "a key"
        return result("ok", f"{alg}, {which} from {info['jwks_uri']}: signature valid")
    if other_algs and len(other_algs) == len(candidates):
        return result(
            "fail", f"the token says {alg}, the issuer's key is for {', '.join(other_algs)}"
        )
    which = f"key {kid}" if kid else f"{len(candidates)} key(s)"
    return result(
        "fail",
        f"INVALID signature: {alg} does not verify with the issuer's {which}; the token was "
        f"altered, or not signed by {iss}",
    )


def _issuer_keys(
    iss: str, run: RunContext, ca_bundle: str | None
) -> tuple[list[dict[str, Any]], str]:
    import requests

    from gatekey.http import IdpSession, JsonAnswer, fetch_discovery, get_json

    session = IdpSession(run, ca_bundle=ca_bundle)  # no cache: inspect keeps no state of its own

    def get(url: str) -> requests.Response:
        try:
            return session.get(url, headers={"Accept": "application/json"})
        except requests.RequestException as e:
            raise HelperError(f"{url}: {type(e).__name__}") from None

    def document(answer: JsonAnswer) -> dict[str, Any]:
        if answer.status != 200:
            raise HelperError(f"{answer.url} answered HTTP {answer.status}")
        if not answer.is_json:
            raise HelperError(f"{answer.url} did not answer JSON")
        if answer.document is None:
            raise HelperError(f"{answer.url} did not answer a JSON object")
        return answer.document

    discovery = document(fetch_discovery(iss, get))
    jwks_uri = discovery.get("jwks_uri")
    if not isinstance(jwks_uri, str):
        raise HelperError("the issuer's discovery document has no jwks_uri")
    keys = document(get_json(jwks_uri, get)).get("keys")
    return [k for k in keys if isinstance(k, dict)] if isinstance(keys, list) else [], jwks_uri
