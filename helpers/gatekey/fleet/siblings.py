"""`gatekey mdm`'s sibling helper keys: the other places a managed Claude Desktop runs a helper.

What the app documents (https://claude.com/docs/third-party/claude-desktop/configuration):
- ``managedMcpServers`` (object[]): remote entries ``{name, transport: http|sse, url, headers?,
  headersHelper?, headersHelperTtlSec? (integer, default 300), headersHelperRefreshBufferSec?
  (integer, default 60)}``; the helper prints a flat JSON object of headers, within 30 s, with no
  ``CLAUDE_HELPER_CONTEXT`` and no prompt.
- ``otlpEndpoint`` and ``otlpHeadersHelper`` (strings); the helper prints a JSON object of
  collector headers, merged over the static ones (the helper wins), its output cached for "a few
  minutes".
- ``allowedPluginMarketplaces`` (object[], beta): ``{source: github|git|url, url, expectedName,
  credentialKind: anonymous|userGit|credentialHelper|inferenceCredential, credentialHelper}``;
  the helper prints an access token (``inferenceCredential``: a url source the gateway hosts).

Every managed value is a string: an object[] key is one JSON document encoded as a string, the
encoding the app documents as portable (read on every platform). Inside it the integer fields
are JSON numbers, as the app's schema has them (``ENTRY_INTEGERS`` says which: change it there).

The checks are the inference keys' rules, per surface: each helper is one absolute path the app
can spawn with no arguments that nobody but you and root could replace here (``--force`` warns);
a TTL is no longer than the ``min_ttl`` of the profile the helper serves (the app reuses the
headers that long without looking at an expiry); a refresh buffer is shorter than its TTL and no
shorter than gatekey's silent deadline (a refresh must fit in it); each URL is https (http only
to this machine, for a local peer) without credentials in it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from gatekey import config, credential_headers
from gatekey.diagnostics.helper_path import read_helper, refuse_replaceable
from gatekey.errors import UsageProblem
from gatekey.fleet.files import Note
from gatekey.fleet.managed import check_helper_path

MCP_KEY = "managedMcpServers"
OTLP_ENDPOINT_KEY = "otlpEndpoint"
OTLP_HELPER_KEY = "otlpHeadersHelper"
MARKETPLACES_KEY = "allowedPluginMarketplaces"
DEFAULT_BUFFER = 60  # headersHelperRefreshBufferSec's documented default, written explicitly
ENTRY_INTEGERS = True  # write headersHelperTtlSec / ...BufferSec as JSON numbers, not strings
# The names the app's configuration window accepts for a server (and we for a marketplace).
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Request:
    """The sibling options of ``gatekey mdm``, as given (pairs are ``NAME=VALUE``)."""

    mcp_servers: tuple[str, ...] = ()
    mcp_helpers: tuple[str, ...] = ()
    mcp_ttls: tuple[str, ...] = ()
    mcp_buffers: tuple[str, ...] = ()
    otlp_endpoint: str | None = None
    otlp_helper: str | None = None
    marketplace: str | None = None
    marketplace_helper: str | None = None


@dataclass(frozen=True)
class Target:
    """What the checks need from mdm: the config, the profile a helper we cannot read is taken
    to serve (``-p``, else the selected one), the one a plain no-argument gatekey selects."""

    cfg: config.Config
    profile: str
    no_argument: str | None
    windows: bool
    gateway_url: str
    ttl_margin: int
    force: bool
    note: Note


def _dump(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _control(text: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


def _pairs(option: str, pairs: tuple[str, ...], what: str) -> dict[str, str]:
    """``NAME=VALUE`` pairs by name, in the order given; a name given twice is refused."""
    found: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not NAME.fullmatch(name):
            # Not echoed whole: a mistyped value may hold a secret.
            raise UsageProblem(
                option,
                f"expected NAME={what} with a name of letters, digits, '.', '_' or '-', "
                "e.g. tools=...",
            )
        if name in found:
            raise UsageProblem(option, f"{name} is given twice")
        found[name] = value
    return found


def check_url(option: str, url: str) -> str:
    """A sibling endpoint: https (or http to this machine), a host, no credentials in it."""
    from gatekey.http import is_loopback_http  # not imported by mdm's other paths

    if not url or _control(url) or url != url.strip() or " " in url:
        raise UsageProblem(option, "must be a URL without spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme.lower() != "https" and not is_loopback_http(url):
        raise UsageProblem(
            option,
            f"must be an https:// URL (not {parts.scheme or 'no'} scheme; http only to this "
            "machine): the helper's credential would cross the network in clear text",
        )
    if not parts.hostname:
        raise UsageProblem(option, "has no host name, e.g. https://mcp.example.com/mcp")
    if parts.username or parts.password:
        raise UsageProblem(option, "must not contain credentials; the helper supplies them")
    for name, _value in parse_qsl(parts.query, keep_blank_values=True):
        # Query names spell words with "_" where header names use "-" (api_key, access_token).
        if credential_headers.is_credential(name.replace("_", "-")):
            raise UsageProblem(
                option,
                f"its query parameter {name!r} looks like a credential, which would be the same "
                "in every machine's managed settings; the helper supplies the credential",
            )
    if parts.fragment:
        raise UsageProblem(option, "must not have a #fragment")
    return url


def _helper(option: str, path: str, target: Target) -> str:
    path = check_helper_path(
        path, windows=target.windows, exists=os.path.isfile(path), option=option
    )
    if not target.windows:  # a Windows path names nothing on this machine
        refuse_replaceable(path, option, force=target.force, note=target.note)
    return path


def served_profile(option: str, path: str, target: Target) -> tuple[str, str]:
    """The profile the helper at ``path`` serves, and how we know: a ``gatekey wrap`` wrapper
    names the profile it pins; gatekey itself serves its no-argument profile; a helper we cannot
    read here is taken to serve ``-p``'s (the admin is told to make it so)."""
    found = read_helper(path) if not target.windows else None
    if found is not None and found.kind == "wrapper" and found.pinned:
        if found.pinned not in target.cfg.profile_names:
            raise UsageProblem(
                option,
                f'{path} pins profile "{found.pinned}", which the config does not have '
                f"(its profiles: {', '.join(target.cfg.profile_names)})",
            )
        return found.pinned, f"pinned by {path}"
    if found is not None and found.kind == "gatekey" and target.no_argument:
        return target.no_argument, f"selected by {path} run with no arguments"
    return target.profile, f"of -p/the selection; make sure {path} serves it"


def _mcp_timing(
    name: str, helper: str, ttl_text: str | None, buffer_text: str | None, target: Target
) -> tuple[int, int, str]:
    """(headersHelperTtlSec, headersHelperRefreshBufferSec, where they came from)."""
    profile, how = served_profile("--mcp-helper", helper, target)
    min_ttl = float(target.cfg.profile(profile).values["min_ttl"])
    silent = target.cfg.timeout("silent")
    buffer = (
        DEFAULT_BUFFER
        if buffer_text is None
        else _seconds("--mcp-refresh-buffer", name, buffer_text)
    )
    if ttl_text is None:
        ttl = int(min_ttl) - target.ttl_margin
        origin = (
            f'{name}: TTL {ttl} = min_ttl {min_ttl:g} s of "{profile}" ({how}) '
            f"- {target.ttl_margin} s"
        )
        if ttl <= buffer:
            raise UsageProblem(
                "--mcp-ttl",
                f"{name}: profile {profile!r}'s min_ttl {min_ttl:g} s leaves no TTL above the "
                f"refresh buffer ({buffer} s); raise min_ttl or give --mcp-ttl {name}=SEC",
            )
    else:
        ttl = _seconds("--mcp-ttl", name, ttl_text)
        origin = f'{name}: TTL {ttl} checked against min_ttl {min_ttl:g} s of "{profile}" ({how})'
        if ttl > min_ttl:
            raise UsageProblem(
                "--mcp-ttl",
                f"{name}: {ttl} s is longer than profile {profile!r}'s min_ttl ({min_ttl:g} s), "
                "the least lifetime gatekey guarantees a printed token; the app would send "
                f"expired headers. Use --mcp-ttl {name}={max(int(min_ttl) - target.ttl_margin, 1)} "
                f'or raise min_ttl (e.g. "{ttl + target.ttl_margin}s")',
            )
    if buffer >= ttl:
        raise UsageProblem(
            "--mcp-refresh-buffer",
            f"{name}: {buffer} s is not shorter than the TTL ({ttl} s); the app re-runs the "
            "helper this long before the TTL ends, so it must be shorter",
        )
    if buffer < silent:
        raise UsageProblem(
            "--mcp-refresh-buffer",
            f"{name}: {buffer} s is shorter than gatekey's silent deadline ({silent:g} s, "
            "[timeouts] silent): a refresh could end after the headers expire",
        )
    return ttl, buffer, origin


def _seconds(option: str, name: str, text: str) -> int:
    try:
        seconds = int(text.strip())
    except ValueError:
        seconds = 0
    if seconds < 1:
        raise UsageProblem(option, f"{name}: expected a whole number of seconds above 0")
    return seconds


def mcp_servers(request: Request, target: Target) -> tuple[list[dict[str, object]], list[str]]:
    """The managedMcpServers entries ``--mcp-server`` asks for, and where their numbers came
    from (for stderr)."""
    servers = _pairs("--mcp-server", request.mcp_servers, "URL")
    helpers = _pairs("--mcp-helper", request.mcp_helpers, "PATH")
    ttls = _pairs("--mcp-ttl", request.mcp_ttls, "SEC")
    buffers = _pairs("--mcp-refresh-buffer", request.mcp_buffers, "SEC")
    for option, given in (("--mcp-helper", helpers), ("--mcp-ttl", ttls)):
        for name in given:
            if name not in servers:
                raise UsageProblem(option, f"{name}: no --mcp-server {name}=URL names it")
    for name in buffers:
        if name not in servers:
            raise UsageProblem(
                "--mcp-refresh-buffer", f"{name}: no --mcp-server {name}=URL names it"
            )
    entries: list[dict[str, object]] = []
    origins: list[str] = []
    for name, url in servers.items():
        if name not in helpers:
            raise UsageProblem(
                "--mcp-helper",
                f"{name}: give its headers helper, --mcp-helper {name}=PATH (a wrapper from "
                "gatekey wrap -p PROFILE --format headers -o PATH)",
            )
        helper = _helper("--mcp-helper", helpers[name], target)
        ttl, buffer, origin = _mcp_timing(name, helper, ttls.get(name), buffers.get(name), target)
        entries.append(
            {
                "name": name,
                "transport": "http",
                "url": check_url("--mcp-server", url),
                "headersHelper": helper,
                "headersHelperTtlSec": ttl if ENTRY_INTEGERS else str(ttl),
                "headersHelperRefreshBufferSec": buffer if ENTRY_INTEGERS else str(buffer),
            }
        )
        origins.append(origin)
    return entries, origins


def otlp(request: Request, target: Target, extra: dict[str, str]) -> dict[str, str]:
    """otlpEndpoint and otlpHeadersHelper."""
    if request.otlp_endpoint is None:
        if request.otlp_helper is not None:
            raise UsageProblem(
                "--otlp-helper",
                "needs --otlp-endpoint URL: without a collector the app runs no helper",
            )
        return {}
    values = {OTLP_ENDPOINT_KEY: check_url("--otlp-endpoint", request.otlp_endpoint)}
    if request.otlp_helper is not None:
        if OTLP_HELPER_KEY in extra:
            raise UsageProblem(
                "--otlp-helper", f"and --set {OTLP_HELPER_KEY} both give the helper; keep one"
            )
        values[OTLP_HELPER_KEY] = _helper("--otlp-helper", request.otlp_helper, target)
    elif OTLP_HELPER_KEY not in extra and "otlpAuthMode" not in extra:
        target.note(
            "warning: --otlp-endpoint without --otlp-helper: the collector gets no credential "
            "from the helper (give --otlp-helper PATH, a gatekey wrap --format headers wrapper)"
        )
    return values


def marketplace(request: Request, target: Target) -> dict[str, object] | None:
    """The allowedPluginMarketplaces entry: ``NAME=URL`` (NAME is the manifest's own name,
    which the app then requires), a hosted marketplace.json (``source: url``) when the URL's
    path ends in ``.json``, else a Git remote (``source: git``)."""
    if request.marketplace is None:
        if request.marketplace_helper is not None:
            raise UsageProblem("--marketplace-helper", "needs --marketplace NAME=URL")
        return None
    ((name, url),) = _pairs("--marketplace", (request.marketplace,), "URL").items()
    url = check_url("--marketplace", url)
    source = "url" if urlsplit(url).path.lower().endswith(".json") else "git"
    entry: dict[str, object] = {"source": source, "url": url, "expectedName": name}
    if request.marketplace_helper is not None:
        entry["credentialKind"] = "credentialHelper"
        entry["credentialHelper"] = _helper(
            "--marketplace-helper", request.marketplace_helper, target
        )
    elif source == "url" and _origin(url) == _origin(target.gateway_url):
        # Documented for a url source the gateway itself hosts: the inference bearer, no helper.
        entry["credentialKind"] = "inferenceCredential"
        target.note(
            f"--marketplace {name}: on the gateway's origin, so it reuses the inference "
            "credential (credentialKind inferenceCredential); give --marketplace-helper to use one"
        )
    else:
        raise UsageProblem(
            "--marketplace-helper",
            f"--marketplace {name} needs a credential helper (a wrapper from gatekey wrap, "
            "--output git-credential for a Git remote); only a marketplace.json the gateway "
            "itself serves can reuse the inference credential",
        )
    return entry


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def _merged_servers(extra: dict[str, str], ours: list[dict[str, object]]) -> str:
    """``--set managedMcpServers`` (already checked) first, then ours; one name once."""
    given = json.loads(extra[MCP_KEY]) if MCP_KEY in extra else []
    names = [s.get("name") for s in given] + [s["name"] for s in ours]
    twice = sorted({str(n) for n in names if n is not None and names.count(n) > 1})
    if twice:
        raise UsageProblem(
            "--mcp-server", f"{', '.join(twice)} also named in --set {MCP_KEY}; names are unique"
        )
    return _dump(given + ours)


def values(
    request: Request, target: Target, extra: dict[str, str]
) -> tuple[dict[str, str], list[str]]:
    """The sibling keys to write (each value a string) over ``extra`` (the --set keys, which
    they replace or join), and where the numbers came from."""
    written: dict[str, str] = {}
    servers, origins = mcp_servers(request, target)
    if servers:
        written[MCP_KEY] = _merged_servers(extra, servers)
    written.update(otlp(request, target, extra))
    entry = marketplace(request, target)
    if entry is not None:
        written[MARKETPLACES_KEY] = _dump([entry])
    return written, origins
