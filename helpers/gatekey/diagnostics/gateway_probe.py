"""Doctor's gateway check: the token where Claude will send it, and what the answer means.

``GET {gateway}/v1/models`` with the token in the profile's auth scheme and the headers Claude
adds (inferenceCustomHeaders, then the helper's own when the profile prints JSON). The trust is
Claude's: the OS trust store alone, so a gateway trusted only through the profile's ca_bundle is
a warning. No redirect is followed (the token must not go to another host), and only names,
statuses and messages are read from the answer, never echoed whole.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gatekey import output, tls
from gatekey.checks import FAIL, OK, SKIP, WARN, Check
from gatekey.context import RunContext
from gatekey.diagnostics import advice, gateway_advice
from gatekey.diagnostics.claude_settings import BASE_URL_KEY, HEADERS_KEY, SCHEME_KEY
from gatekey.token import jwt_claims

if TYPE_CHECKING:
    import requests

    from gatekey.config import Profile
    from gatekey.diagnostics.claude_settings import ClaudeSettings
    from gatekey.token import Token

GATEWAY_TIMEOUT = 15.0
ANTHROPIC_VERSION = "2023-06-01"  # sent by Anthropic clients; some gateways require it


@dataclass
class Reached:
    """What the gateway check learnt, for the checks after it (the clock, --probe-messages).
    ``headers`` are what Claude sends, the credential included: kept in memory, never shown."""

    base: str
    headers: dict[str, str]
    ca_bundle: str | None = None  # the trust that reached the gateway (None: the OS store)
    status: int | None = None  # None: no HTTP answer (TLS, the network)
    models: list[str] = field(default_factory=list)
    date: tuple[float, float, str] | None = None  # its Date, ours, its host (doctor's clock)


def check(
    prof: Profile, token: Token | None, gateway_url: str | None, claude: ClaudeSettings
) -> tuple[Check, Reached | None]:
    """Doctor's "gateway" check: ``GET {gateway}/v1/models`` with ``token``, as Claude sends it
    (``gateway_url``, else Claude's inferenceGatewayBaseUrl), what the answer means, and what
    was learnt (None: nothing was sent)."""
    from urllib.parse import urlsplit

    from gatekey.http import is_loopback_http

    url, origin = gateway_url, "--gateway-url"
    if not url:
        url, origin = claude.values.get(BASE_URL_KEY), BASE_URL_KEY
    if not url:
        return Check(
            "gateway",
            SKIP,
            f"no gateway URL: pass --gateway-url, or set {BASE_URL_KEY} in Claude's managed "
            "configuration",
        ), None
    if token is None:
        return Check("gateway", SKIP, f"no token to try at {url} (see the token check)"), None
    parts = urlsplit(url)
    notes: list[Check] = []
    if parts.scheme.lower() != "https" or not parts.netloc:
        if not is_loopback_http(url):
            return Check(
                "gateway",
                FAIL,
                f"{url} ({origin}) is not an https:// URL; doctor sends no token to it",
                ["use the gateway's https:// address (Claude requires https://)"],
            ), None
        notes.append(
            Check("gateway", OK, "plain HTTP to this machine; Claude itself wants https://")
        )
    scheme = prof.values["auth_scheme"]
    app_scheme = claude.values.get(SCHEME_KEY, "").strip().lower()
    if app_scheme and app_scheme != scheme:
        notes.append(
            Check(
                "gateway",
                WARN,
                f"Claude sends the token as {app_scheme} ({SCHEME_KEY}), the profile says "
                f"{scheme}; doctor used the profile's",
                [f"make {SCHEME_KEY} and the profile's auth_scheme the same"],
            )
        )
    headers = _headers(prof, token, claude, notes)
    if scheme == "bearer":
        headers["Authorization"] = f"Bearer {token.value}"
    else:
        headers["x-api-key"] = token.value
    reached = Reached(url.rstrip("/"), headers)
    endpoint = reached.base + "/v1/models"
    data = {"url": endpoint, "auth_scheme": scheme}
    answer = _call(prof, endpoint, reached, token.value, data)
    return advice.combine(Check("gateway", OK, "", [], data), [answer, *notes]), reached


def _headers(
    prof: Profile, token: Token, claude: ClaudeSettings, notes: list[Check]
) -> dict[str, str]:
    """What Claude sends besides the credential: inferenceCustomHeaders, then (when the
    profile prints JSON) the helper's headers, which win: its text ones filled, its references
    as they were resolved with the credential (Token.headers)."""
    headers = {"anthropic-version": ANTHROPIC_VERSION}
    custom = claude.values.get(HEADERS_KEY)
    if custom:
        try:
            parsed = json.loads(custom)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and all(isinstance(v, str) for v in parsed.values()):
            headers.update(parsed)
        else:
            fix = f'write {HEADERS_KEY} as a JSON object string, e.g. {{"X-Team": "a"}}'
            notes.append(
                Check("gateway", WARN, f"{HEADERS_KEY} is not a JSON object of strings", [fix])
            )
    if prof.values["output"] == "json":
        headers.update(output.fill_claims(prof.values["headers"], token.value))
        headers.update(token.headers)
    return headers


def _call(
    prof: Profile, endpoint: str, reached: Reached, token: str, data: dict[str, Any]
) -> Check:
    import requests

    from gatekey.http import IdpSession, exception_reason

    def call(ca_bundle: str | None) -> requests.Response:
        run = RunContext("background", interactive=False, timeout=GATEWAY_TIMEOUT)
        # IdpSession's TLS set-up (the OS trust store, plus ca_bundle when given; never
        # REQUESTS_CA_BUNDLE) without its error translation: the gateway gets its own advice.
        # No redirects: the token must not follow one to another host.
        with IdpSession(run, ca_bundle=ca_bundle, loopback_http=True) as session:
            before = time.time()
            response = requests.Session.request(
                session,
                "GET",
                endpoint,
                headers=reached.headers,
                allow_redirects=False,
                timeout=(5.0, GATEWAY_TIMEOUT),
            )
            reached.date = server_date(response, (before + time.time()) / 2, host)
            return response

    host = endpoint.split("/")[2]
    untrusted = None
    try:
        try:
            response = call(None)  # the trust Claude has: the OS trust store alone
        except requests.exceptions.SSLError as e:
            if not prof.values.get("ca_bundle") or ssl_reason(e) in tls.NOT_TLS_REASONS:
                raise
            reached.ca_bundle = prof.values["ca_bundle"]
            response, untrusted = call(reached.ca_bundle), tls_reason(e)
    except requests.exceptions.SSLError as e:
        if ssl_reason(e) in tls.NOT_TLS_REASONS:
            return _not_tls(endpoint, tls_reason(e))
        return Check(
            "gateway",
            FAIL,
            f"TLS with {host} failed: {tls_reason(e)}",
            [gateway_advice.tls(tls_reason(e), host)],
        )
    except requests.exceptions.Timeout:
        return Check(
            "gateway",
            FAIL,
            f"{host} did not answer GET /v1/models within {GATEWAY_TIMEOUT:g} s",
            ["check the URL, the network or VPN, and HTTPS_PROXY / NO_PROXY"],
        )
    except requests.exceptions.ConnectionError as e:
        if ssl_reason(e) in tls.NOT_TLS_REASONS:  # a ProxyError: the proxy's handshake
            return _not_tls(endpoint, ssl_reason(e))
        if _speaks_tls_instead(endpoint):
            return gateway_advice.speaks_tls(host)
        return Check(
            "gateway",
            FAIL,
            f"cannot reach {host} ({exception_reason(e)})",
            ["check the URL, DNS, the network or VPN, and HTTPS_PROXY / NO_PROXY"],
        )
    reached.status = data["status"] = response.status_code
    reached.models = model_ids(response) or []
    is_json = "json" in response.headers.get("Content-Type", "").lower()
    if response.status_code == 400 and not is_json and _speaks_tls_instead(endpoint):
        return gateway_advice.speaks_tls(host)  # a TLS server's plain-HTTP refusal (nginx)
    message, kind = error_of(response)
    answer = gateway_advice.answer(
        response.status_code,
        endpoint=endpoint,
        profile=prof,
        claims=jwt_claims(token),
        challenge=response.headers.get("WWW-Authenticate", ""),
        message=message,
        error_type=kind,
        models=None if response.status_code != 200 else count_models(response),
        location=response.headers.get("Location"),
    )
    if untrusted is None:
        return answer
    return Check(
        "gateway",
        WARN if answer.verdict == OK else answer.verdict,
        f"{answer.detail}; but {host}'s certificate is trusted only through the profile's "
        f"ca_bundle ({untrusted}), which Claude does not use",
        [
            "".join(f"{fix}; and " for fix in answer.fixes)
            + f"add the CA of {host}'s certificate to this machine's trust store"
        ],
    )


# --- the wrong protocol: https:// to a plain-HTTP port, http:// to a TLS port -----------------
PROTOCOL_PROBE_TIMEOUT = 5.0


def _address(url: str) -> tuple[str, int]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    default = 443 if parts.scheme.lower() == "https" else 80
    return parts.hostname or "", parts.port or default


def _not_tls(endpoint: str, reason: str) -> Check:
    """The TLS handshake met bytes that are not TLS: plain HTTP (asked again, without any
    credential, to be sure) or something else."""
    from urllib.parse import urlsplit

    from requests.utils import get_environ_proxies

    host = endpoint.split("/")[2]
    if tls.answers_plain_http(*_address(endpoint), PROTOCOL_PROBE_TIMEOUT):
        return gateway_advice.plain_http(host)
    # Through a proxy the bytes may have been the proxy's (HTTPS_PROXY=https://... naming a
    # plain-HTTP proxy): name it, by host and port only (its URL may hold a password).
    proxy = urlsplit(get_environ_proxies(endpoint).get("https") or "")
    via = f"{proxy.hostname}:{proxy.port or 443}" if proxy.hostname else None
    return gateway_advice.not_tls(host, reason.replace("_", " ").lower(), via)


def _speaks_tls_instead(endpoint: str) -> bool:
    """For an http:// URL whose server hung up or refused the request: does it speak TLS?"""
    if not endpoint.lower().startswith("http://"):
        return False
    return tls.speaks_tls(*_address(endpoint), PROTOCOL_PROBE_TIMEOUT)


# --- reading answers (no secrets: names, statuses and messages only) ------------------------------
def error_text(response: requests.Response) -> str:
    """A gateway's error message (JSON ``error.message`` and the like), one short line."""
    return error_of(response)[0]


def error_of(response: requests.Response) -> tuple[str, str]:
    """A gateway's error message and error type (see error_in) from its answer."""
    return error_in(response.status_code, response.text if response.status_code >= 300 else "")


def error_in(status: int, text: str) -> tuple[str, str]:
    """A gateway's error message (JSON ``error.message`` and the like, one short line) and its
    error type (``error.type``, e.g. LiteLLM's ``no_db_connection``; "" when none), from an
    answer with ``status`` and body ``text``."""
    if status < 300:
        return "", ""
    kind = ""
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        text = ""
        if isinstance(error, dict):
            named = error.get("type")
            kind = named if isinstance(named, str) else ""
            text = str(error.get("message") or kind or "")
        elif isinstance(error, str):
            text = error
        text = text or str(body.get("message") or body.get("detail") or "")
    elif body is not None:
        text = ""  # JSON, but not an object: nothing to quote
    lines = text.strip().splitlines()
    return (lines[0][:200] if lines else ""), kind[:60]


def model_ids(response: requests.Response) -> list[str] | None:
    """The model ids a 200 answer to GET /v1/models lists (None: not such an answer)."""
    if response.status_code != 200:
        return None
    try:
        body: Any = response.json()
    except ValueError:
        return None
    models = body.get("data") if isinstance(body, dict) else None
    if not isinstance(models, list):
        return None
    return [m["id"] for m in models if isinstance(m, dict) and isinstance(m.get("id"), str)]


def server_date(
    response: requests.Response, ours: float, host: str
) -> tuple[float, float, str] | None:
    """(the server's time, ours, its host) from an answer's ``Date`` header, for the clock."""
    from email.utils import parsedate_to_datetime

    try:
        theirs = parsedate_to_datetime(response.headers.get("Date", "")).timestamp()
    except (TypeError, ValueError):
        return None
    return theirs + 0.5, ours, host  # Date has whole seconds


def count_models(response: requests.Response) -> int | None:
    if response.status_code != 200:
        return None
    try:
        body: Any = response.json()
    except ValueError:
        return None
    models = body.get("data") if isinstance(body, dict) else None
    return len(models) if isinstance(models, list) else None


def tls_reason(error: BaseException) -> str:
    """OpenSSL's reason inside requests' wrapping (e.g. "self-signed certificate")."""
    import ssl

    from gatekey.http import exception_reason

    found = _find(error, ssl.SSLCertVerificationError)
    if isinstance(found, ssl.SSLCertVerificationError):
        return str(found.verify_message or found.reason or "certificate not trusted")
    found = _find(error, ssl.SSLError)
    if isinstance(found, ssl.SSLError):
        return str(found.reason or type(found).__name__)
    return exception_reason(error)


def ssl_reason(error: BaseException) -> str:
    """OpenSSL's reason code inside requests' wrapping (e.g. "WRONG_VERSION_NUMBER"), or ""."""
    import ssl

    found = _find(error, ssl.SSLError)
    return str(getattr(found, "reason", None) or "")


def _find(error: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first ``kind`` among an exception's arguments, reasons and causes."""
    seen: set[int] = set()
    todo = [error]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kind):
            return current
        linked = (*current.args, getattr(current, "reason", None))
        todo += [
            x
            for x in (*linked, current.__cause__, current.__context__)
            if isinstance(x, BaseException)
        ]
    return None
