"""HTTPS for identity providers: the OS trust store, deadlines, and cached discovery documents.

- TLS is always verified, against the OS trust store (truststore) plus an optional per-profile
  ``ca_bundle``. An explicit ``ca_bundle`` wins over a global ``REQUESTS_CA_BUNDLE`` (requests
  would otherwise let the environment replace it).
- Every request has a whole-request deadline: connecting, TLS, the answer's headers and its whole
  body must be done by the run's deadline minus a reserve (gatekey.deadlines), however the
  bytes trickle in. requests' own read timeout bounds each read, not the answer: a peer sending
  a byte every half second would never trip it. An answer over ``MAX_ANSWER`` bytes is refused.
- ``http://`` is refused: tokens never travel in clear text.
- OpenID discovery documents are kept on disk for a day, so a silent refresh costs one request
  to the token endpoint instead of discovery + token.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import requests
from requests.adapters import HTTPAdapter

from gatekey.cache import FileCache
from gatekey.context import RunContext
from gatekey.deadlines import call_within, fallback_reserve, request_budget
from gatekey.errors import (
    ConfigError,
    DeadlineExceeded,
    HelperError,
    SourceUnavailable,
    TemporaryFailure,
)
from gatekey.token import b64json_object, is_time, jwt_claims

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
# No identity provider, vault or metadata answer comes near this (a token answer is a few KB); a
# peer streaming without end must not fill the memory before the deadline stops it.
MAX_ANSWER = 4 * 1024 * 1024
ANSWER_CHUNK = 64 * 1024
DISCOVERY_TTL = 24 * 3600.0
# OpenID discovery, and Entra's instance discovery (asked by MSAL on the public cloud).
DISCOVERY_SUFFIXES = ("/.well-known/openid-configuration", "/discovery/instance")


def _read_answer(response: requests.Response, host: str) -> requests.Response:
    """Read a streamed answer's body (at most MAX_ANSWER bytes) into ``response``."""
    chunks, size = [], 0
    for chunk in response.iter_content(ANSWER_CHUNK):
        size += len(chunk)
        if size > MAX_ANSWER:
            response.close()
            raise TemporaryFailure(
                f"{host} sent an answer larger than {MAX_ANSWER // 2**20} MiB; not read further "
                "(an identity provider's or a vault's answer is a few KB)"
            )
        chunks.append(chunk)
    response._content = b"".join(chunks)
    return response


def send_within(
    session: requests.Session,
    run: RunContext,
    method: str | bytes,
    url: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> requests.Response:
    """``requests.Session.request`` with a whole-request deadline (the run's, minus the
    reserve) and the MAX_ANSWER limit. requests' exceptions pass through for the caller to
    explain; a missed deadline is DeadlineExceeded."""
    host = _host(url)
    budget = request_budget(run, f"waiting for {host}")
    # Inner bounds, for a peer that says nothing at all: the connect bound names the network.
    kwargs["timeout"] = (min(CONNECT_TIMEOUT, budget), budget)
    kwargs["stream"] = True  # the body is read by _read_answer, inside the deadline
    verb = method.decode() if isinstance(method, bytes) else method
    send = functools.partial(requests.Session.request, session, verb, url, *args, **kwargs)

    def late() -> HelperError:
        return DeadlineExceeded(
            f"{host} did not answer within the {run.name} time limit ({run.timeout:g} s)"
        )

    return call_within(lambda: _read_answer(send(), host), budget, late)


class _TrustStoreAdapter(HTTPAdapter):
    def __init__(self, ca_bundle: str | None) -> None:
        import ssl

        import truststore

        self._context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if ca_bundle:
            self._context.load_verify_locations(cafile=ca_bundle)
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["ssl_context"] = self._context
        return super().proxy_manager_for(*args, **kwargs)


class IdpSession(requests.Session):
    """The HTTP client gatekey hands to MSAL."""

    def __init__(
        self,
        run: RunContext,
        *,
        ca_bundle: str | None = None,
        cache: FileCache | None = None,
        loopback_http: bool = False,
        answer_5xx: bool = False,
        json_answers: bool = False,
    ) -> None:
        super().__init__()
        self.run = run
        self.cache = cache  # where discovery documents are kept (none: not kept)
        self.mount("https://", _TrustStoreAdapter(ca_bundle))
        self.verify = True
        self.requests_sent = 0
        # Plain HTTP to this machine only (a Vault dev server, a local agent): nothing crosses a
        # network. Identity providers never get this.
        self.loopback_http = loopback_http
        self.answer_5xx = answer_5xx  # the caller explains 5xx and 429 itself (Vault)
        # Every answer must be JSON (an identity provider's): anything else (an error page from
        # a proxy, a cut-off body) is a temporary failure, and its body is never shown or parsed
        # further (a cut-off token response holds part of a token).
        self.json_answers = json_answers

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        # Our adapter's SSL context (OS store + ca_bundle) decides; REQUESTS_CA_BUNDLE and
        # CURL_CA_BUNDLE must not swap in another file. Proxies from the environment still apply.
        settings["verify"] = True
        return settings

    def rebuild_auth(self, prepared_request: Any, response: Any) -> None:
        """Every redirect a request follows (Vault's standby nodes send them): never to plain
        HTTP, where the request's token header would travel in clear text."""
        target = str(prepared_request.url)
        if not target.lower().startswith("https://") and not (
            self.loopback_http and is_loopback_http(target)
        ):
            raise TemporaryFailure(
                f"{_host(str(response.url))} redirected to a plain-HTTP URL ({_host(target)}); "
                "not followed"
            )
        super().rebuild_auth(prepared_request, response)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        text_url = url.decode() if isinstance(url, bytes) else url
        if not text_url.lower().startswith("https://") and not (
            self.loopback_http and is_loopback_http(text_url)
        ):
            raise ConfigError(f"refusing a plain-HTTP URL ({_host(text_url)}); use https")
        cached = self._cached_discovery(method, text_url)
        if cached is not None:
            return cached
        if self.json_answers:
            # An identity provider answers directly; a redirect followed here would carry the
            # form (a client secret, a refresh token) to wherever it points, http:// included.
            kwargs["allow_redirects"] = False
        self.requests_sent += 1
        try:
            response = send_within(self, self.run, method, text_url, args, kwargs)
        except requests.exceptions.SSLError as e:
            raise TemporaryFailure(
                f"TLS verification failed for {_host(text_url)} ({exception_reason(e)})",
                fix="if a proxy inspects TLS, set the profile's ca_bundle to its CA certificate",
            ) from None
        except requests.exceptions.Timeout:
            if self.run.remaining() - fallback_reserve(self.run) > 0.5:
                # The connect bound (TCP and the TLS handshake) fired, well before the run's
                # deadline. (A handshake that times out is not always a ConnectTimeout.)
                raise DeadlineExceeded(
                    f"{_host(text_url)} did not complete a connection (TCP and TLS) within "
                    f"{kwargs['timeout'][0]:g} s",
                    fix="check the network or VPN",
                ) from None
            raise DeadlineExceeded(
                f"{_host(text_url)} did not answer within the {self.run.name} time limit "
                f"({self.run.timeout:g} s)"
            ) from None
        except requests.exceptions.ConnectionError as e:
            raise TemporaryFailure(
                f"cannot reach {_host(text_url)} ({exception_reason(e)})",
                fix="check the network or VPN",
            ) from None
        except requests.exceptions.RequestException as e:  # redirects, broken encodings...
            raise TemporaryFailure(
                f"{_host(text_url)} sent an answer that cannot be read ({type(e).__name__}); "
                "try again later"
            ) from None
        status = response.status_code
        if status >= 500 and not self.answer_5xx:
            raise TemporaryFailure(
                f"{_host(text_url)} answered HTTP {status}", fix="try again later"
            )
        if status == 429 and not self.answer_5xx:
            wait = retry_after(response.headers.get("Retry-After"))
            error = TemporaryFailure(
                f"{_host(text_url)} is limiting requests (HTTP 429"
                + (f", retry after {wait:g} s" if wait is not None else "")
                + ")",
                fix="try again later",
            )
            error.retry_after = wait
            raise error
        if self.json_answers:
            self._check_answer(text_url, response)
        self._store_discovery(method, text_url, response)
        return response

    def _check_answer(self, url: str, response: requests.Response) -> None:
        """An identity provider answers JSON objects, with numbers where OAuth says so; anything
        else (an error page, a cut-off body, a redirect) fails here, its body unshown, rather
        than deep inside MSAL."""
        status, host = response.status_code, _host(url)
        if 300 <= status < 400:
            raise TemporaryFailure(
                f"{host} answered HTTP {status} (a redirect) where an identity provider answers "
                "directly",
                fix="check the issuer URL if this persists",
            )
        try:
            data = response.json()
        except (ValueError, RecursionError):
            kind = response.headers.get("Content-Type", "no content type").split(";")[0]
            raise TemporaryFailure(
                f"{host} answered HTTP {status} with a body that is not JSON ({kind}, "
                f"{len(response.content)} bytes: an error page or a cut-off answer)",
                fix="try again later",
            ) from None
        if not isinstance(data, dict):
            raise TemporaryFailure(
                f"{host} answered HTTP {status} with JSON that is not an object",
                fix="try again later",
            )
        bad = [k for k in NUMBER_FIELDS if k in data and not _seconds(data[k])]
        bad += [k for k in TEXT_FIELDS if k in data and not isinstance(data[k], str)]
        if "id_token" in data and not (
            isinstance(data["id_token"], str) and jwt_claims(data["id_token"]) is not None
        ):
            bad.append("id_token")
        if "client_info" in data and not _b64_object(data["client_info"]):
            bad.append("client_info")
        if bad:
            raise TemporaryFailure(
                f"{host} answered with an unusable {bad[0]}", fix="try again later"
            )
        if url.split("?", 1)[0].endswith(DISCOVERY_SUFFIXES[0]) and status == 200:
            problem = discovery_problem(data)
            if problem:
                raise TemporaryFailure(
                    f"the discovery document at {host} {problem}",
                    fix="check the issuer if this persists",
                )

    # --- discovery documents --------------------------------------------------------------
    def _discovery_key(self, method: str | bytes, url: str) -> str | None:
        if self.cache is None or method not in ("GET", b"GET"):
            return None
        if not url.split("?", 1)[0].endswith(DISCOVERY_SUFFIXES):
            return None
        import hashlib

        return hashlib.sha256(url.encode()).hexdigest()[:32]

    def _cached_discovery(self, method: str | bytes, url: str) -> requests.Response | None:
        key = self._discovery_key(method, url)
        if key is None or self.cache is None:
            return None
        blob, _ = self.cache.read_blob("discovery", key)
        try:
            data = json.loads(blob or "")
            at = data["at"]
            if not isinstance(at, (int, float)) or not 0 <= time.time() - at <= DISCOVERY_TTL:
                return None  # old, from the future, NaN or damage: fetch it again
            if data["url"] != url or discovery_problem(data["body"]):
                return None
            response = requests.Response()
            response.status_code = 200
            response._content = json.dumps(data["body"]).encode()
            response.headers["Content-Type"] = "application/json"
            response.url = url
            return response
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError):
            return None

    def _store_discovery(self, method: str | bytes, url: str, response: Any) -> None:
        key = self._discovery_key(method, url)
        if key is None or self.cache is None or response.status_code != 200:
            return
        try:
            entry = {"at": time.time(), "url": url, "body": response.json()}
            self.cache.write_blob("discovery", key, json.dumps(entry))
        except (OSError, ValueError) as e:
            log.debug("could not cache the discovery document (%s)", type(e).__name__)


class ManagedIdentitySession(requests.Session):
    """For Azure managed identity only: its endpoint (IMDS) is plain HTTP on a link-local
    address by design, reachable only from the machine itself. Deadline-bound, no proxies."""

    def __init__(self, run: RunContext) -> None:
        super().__init__()
        self.run = run
        self.trust_env = False  # IMDS must never go through a proxy

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        text_url = url.decode() if isinstance(url, bytes) else url
        try:
            return send_within(self, self.run, method, text_url, args, kwargs)
        except (requests.exceptions.Timeout, DeadlineExceeded):
            raise DeadlineExceeded(
                f"the managed identity endpoint did not answer within {self.run.timeout:g} s"
            ) from None
        except requests.exceptions.ConnectionError:
            raise SourceUnavailable(
                "no managed identity endpoint answers on this machine",
                fix="managed-identity works on Azure-hosted machines only",
            ) from None


NUMBER_FIELDS = (
    "expires_in",
    "expires_on",
    "ext_expires_in",
    "refresh_in",
    "refresh_token_expires_in",
)
TEXT_FIELDS = ("scope", "access_token", "refresh_token", "token_type")  # when present


def _b64_object(value: Any) -> bool:
    """Base64url of a JSON object, as MSAL expects client_info (and an ID token's payload)."""
    return isinstance(value, str) and b64json_object(value) is not None


def _seconds(value: Any) -> bool:
    """A lifetime as OAuth answers carry it: a number (or digit string) a float can hold."""
    if isinstance(value, str):
        value = value.strip()
        if not (value.isascii() and value.isdigit()):
            return False
        value = int(value)
    return is_time(value)


class JsonAnswer(NamedTuple):
    """The answer to a GET that expects a JSON object (a discovery document, a JWKS)."""

    url: str
    status: int
    document: dict[str, Any] | None  # the JSON object a 200 answer holds, else None
    is_json: bool  # whether a 200 answer's body was JSON at all


def get_json(url: str, get: Callable[[str], requests.Response]) -> JsonAnswer:
    """GET ``url`` with ``get`` (a session's, with its TLS rules, deadline and cache) and read
    the JSON object it answers; its exceptions pass through."""
    response = get(url)
    if response.status_code != 200:
        return JsonAnswer(url, response.status_code, None, False)
    try:
        body = response.json()
    except ValueError:
        return JsonAnswer(url, 200, None, False)
    return JsonAnswer(url, 200, body if isinstance(body, dict) else None, True)


def fetch_discovery(issuer: str, get: Callable[[str], requests.Response]) -> JsonAnswer:
    """The OpenID discovery document of ``issuer`` (or of Entra's authority/tenant/v2.0): the
    one fetch of it outside MSAL, which asks an ``IdpSession`` (and its cache above) itself."""
    return get_json(issuer.rstrip("/") + DISCOVERY_SUFFIXES[0], get)


def discovery_problem(data: Any) -> str | None:
    """What makes an OpenID discovery document unusable, or None."""
    if not isinstance(data, dict):
        return "is not a JSON object"
    for key in ("token_endpoint", "authorization_endpoint"):  # MSAL needs both
        value = data.get(key)
        if not (isinstance(value, str) and value.lower().startswith("http")):
            return f"has no usable {key}"
    if "issuer" in data and not isinstance(data["issuer"], str):
        return "has an issuer that is not text"
    return None


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delay-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # not "\u00b2": headers arrive as latin-1
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError, IndexError):
        return None


def is_loopback_http(url: str) -> bool:
    """An http:// URL whose host is this machine (127.0.0.0/8, ::1, localhost)."""
    import ipaddress
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme.lower() != "http" or not parts.hostname:
        return False
    if parts.hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).netloc or url


def exception_reason(error: BaseException) -> str:
    """The innermost cause, without URLs (they could carry query parameters)."""
    inner = error
    while inner.__context__ is not None and inner.__context__ is not inner:
        inner = inner.__context__
    reason = getattr(inner, "reason", None) or getattr(inner, "strerror", None)
    return f"{type(inner).__name__}: {reason}" if isinstance(reason, str) else type(inner).__name__
