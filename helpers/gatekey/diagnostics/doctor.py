"""`gatekey doctor`: a checklist of what a working setup needs, one verdict and fix per line.

  config   config files found and valid, and which file the profile came from
  claude   Claude's managed settings: used by the app, inferenceProvider = gateway, and
           inferenceCredentialKind selecting the helper (claude_checks.py)
  helper   the inferenceCredentialHelper they name: there, absolute, no arguments, executable,
           replaceable by nobody but you and root, and which profile it gives Claude (a
           ``gatekey wrap`` wrapper's pinned profile is the one doctor checks, unless -p)
  source   the profile's source reachable: OpenID discovery, Vault health, the keychain backend
           (and whether it is a secure one), the executable of a command / 1Password profile
  sign-in  a saved sign-in, for identity providers a person signs in to
  clock    this machine's clock against the source's HTTP ``Date``, else the gateway's (warn
           > 60 s, fail > 5 min); judged after the gateway check, shown here
  token    a token obtained silently, exactly as a background run would (never a browser)
  gateway  ``GET {gateway}/v1/models`` with that token, in the profile's auth scheme; a port
           that speaks the other protocol (plain HTTP for https://, TLS for http://) is named
  messages only with --probe-messages: one streaming ``POST /v1/messages`` (max_tokens 1,
           billable) read to message_stop (messages_probe.py)
  ttl      Claude's inferenceCredentialHelperTtlSec / TimeoutSec against the token's lifetime,
           ``min_ttl`` and gatekey's deadlines, with the values that would work

Verdicts: OK; WARN (works, but worth changing); FAIL (will not work as configured; a fix
follows); SKIP (does not apply, or needs what an earlier check could not get). Exit 0 unless a
check FAILs: warnings do not fail doctor, so it can gate a deployment script.

Doctor is diagnostic: nothing changes beyond what a silent ``gatekey get`` does (the token
check may fetch and cache a token, rotate a refresh token or remember a failure, exactly like
one). Discovery documents are fetched afresh and not cached. No line holds a token or secret:
the token goes only to the gateway, and everything printed passes through the log redactor.
Claude's managed configuration is read by ``claude_settings`` (``GATEKEY_MANAGED_ROOT``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gatekey import config, kinds, logs, refresh
from gatekey.checks import FAIL, OK, SKIP, WARN, Check
from gatekey.context import RunContext
from gatekey.diagnostics import advice, claude_checks, claude_settings, gateway_probe
from gatekey.diagnostics.present import when
from gatekey.durations import format_duration
from gatekey.errors import (
    ConfigError,
    CredentialNotFound,
    HelperError,
    InteractionRequired,
    SourceUnavailable,
    TemporaryFailure,
)
from gatekey.refresh import make_source

if TYPE_CHECKING:
    import requests

    from gatekey.token import Token

log = logging.getLogger(__name__)


# --- the checks ---------------------------------------------------------------------------------
class Doctor:
    """Runs the checks in order; each may use what the earlier ones found."""

    def __init__(
        self,
        explicit: str | None,
        family: str | None,
        gateway_url: str | None,
        *,
        probe_messages: bool = False,
        model: str | None = None,
    ) -> None:
        self.claude = claude_settings.read()
        # What Claude runs decides which profile to check, unless -p says otherwise: a wrapper's
        # pinned profile, or the default of the gatekey-<family> it names.
        self.helper = claude_checks.configured_helper(self.claude)
        if explicit is None and self.helper is not None and self.helper.is_gatekey:
            explicit = self.helper.pinned
            family = family or self.helper.family
        self.explicit, self.family, self.gateway_url = explicit, family, gateway_url
        self.cfg: config.Config | None = None
        self.name: str | None = None
        self.prof: config.Profile | None = None
        self.source: Any = None
        self.server_date: tuple[float, float, str] | None = None  # (theirs, ours, host)
        self.not_signed_in = False
        self.unavailable = False  # the source check found the source cannot run here
        self.token: Token | None = None
        self.reached: gateway_probe.Reached | None = None  # what the gateway check learnt
        self.probe_messages, self.model = probe_messages, model

    def run(self) -> list[Check]:
        steps: list[tuple[str, Callable[[], Check]]] = [
            ("config", self.check_config),
            ("claude", lambda: claude_checks.claude_check(self.claude)),
            (
                "helper",
                lambda: claude_checks.helper_check(self.claude, self.helper, self.cfg, self.name),
            ),
            ("source", self.check_source),
            ("sign-in", self.check_sign_in),
            ("clock", self.check_clock),
            ("token", self.check_token),
            ("gateway", self.check_gateway),
            ("ttl", self.check_ttl),
        ]
        if self.probe_messages:
            steps.insert(-1, ("messages", self.check_messages))
        # Shown in this order, but the clock is judged last: a source without a server (a
        # keychain, a command) leaves the gateway's Date as the only one to compare with.
        done = {name: self._safely(name, step) for name, step in steps if name != "clock"}
        done["clock"] = self._safely("clock", self.check_clock)
        return [done[name] for name, _ in steps]

    def _safely(self, name: str, step: Callable[[], Check]) -> Check:
        """A failing check reports its error as its verdict; the others still run."""
        if name not in ("config", "claude", "helper") and self.prof is None:
            return Check(name, SKIP, "no usable profile (see the config check)")
        if name == "token" and self.unavailable:
            return Check(name, SKIP, "the source cannot run here (see the source check)")
        try:
            return step()
        except HelperError as e:
            self.unavailable = name == "source" and isinstance(e, SourceUnavailable)
            return Check(name, FAIL, *self._explain(e, name))
        except Exception as e:
            log.debug("doctor check %s failed", name, exc_info=True)
            return Check(
                name,
                FAIL,
                f"internal error in this check ({type(e).__name__}); this is a bug in gatekey",
                ["rerun with: gatekey --debug doctor, and report it"],
            )

    # --- 1. config -------------------------------------------------------------------------
    def check_config(self) -> Check:
        files = [
            {"role": role, "path": path, "present": os.path.exists(path)}
            for (path, _required), role in zip(config.locate(), ("managed", "user"), strict=True)
        ]
        data: dict[str, Any] = {"files": files}
        looked = "; ".join(
            f"{f['role']} {f['path']} ({'present' if f['present'] else 'absent'})" for f in files
        )
        cfg = self.cfg = config.load()  # a ConfigError fails this check (see _safely)
        problems: list[ConfigError] = []
        sources: dict[str, Any] = {}
        for name in cfg.profile_names:  # as `gatekey config validate` does
            try:
                sources[name] = make_source(cfg.profile(name), refresh.Links(cfg))
            except ConfigError as e:
                problems.append(e)
            except HelperError as e:  # e.g. an SDK not installed: the source check says so
                log.debug("profile %s: %s", name, e)
        try:
            self.name = config.select_profile(cfg, self.explicit, self.family)
            self.prof = cfg.profile(self.name)
            self.source = sources.get(self.name)
        except ConfigError as e:
            problems.insert(0, e)
        if any(e.profile == self.name for e in problems):
            self.prof = None  # the profile to check is itself broken
        data["profiles"] = len(cfg.profile_names)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            fix = "correct the file and key named; gatekey config validate lists every problem"
            return Check("config", FAIL, f"{problems[0]}{more}", [fix], data)
        assert self.prof is not None  # noqa: S101 - selected without a problem
        origin = data["profile_from"] = self.prof.origins.get("source", "built-in default")
        if not cfg.files:
            return Check("config", OK, f"no config file ({looked}): the built-in profile", [], data)
        detail = (
            f"{len(cfg.profile_names)} profile(s), all valid; this one from {origin} ({looked})"
        )
        return Check("config", OK, detail, [], data)

    # --- 2. source -------------------------------------------------------------------------
    def check_source(self) -> Check:
        prof = self._profile()
        source = self.source if self.source is not None else make_source(prof, self._links())
        if not isinstance(source, kinds.Probing):
            return Check("source", SKIP, f"no reachability probe for source {prof.kind!r}")
        return source.probe(self)

    # kinds.ProbeKit: what a source's probe may use
    def run_context(self) -> RunContext:
        return RunContext("background", interactive=False, timeout=self._silent())

    def get(
        self, url: str, *, ca_bundle: str | None, loopback_http: bool = False
    ) -> requests.Response:
        """One GET with the profile's TLS settings; keeps the server's Date for the clock."""
        from urllib.parse import urlsplit

        from gatekey.http import IdpSession

        # cache=None: fetched afresh, and gatekey's discovery cache is left alone.
        session = IdpSession(
            self.run_context(),
            ca_bundle=ca_bundle,
            cache=None,
            loopback_http=loopback_http,
            answer_5xx=True,
        )
        with session:
            before = time.time()
            response: requests.Response = session.get(url, allow_redirects=False)
            ours = (before + time.time()) / 2
        date = gateway_probe.server_date(response, ours, urlsplit(url).netloc)
        self.server_date = date or self.server_date
        return response

    # --- 3. sign-in --------------------------------------------------------------------------
    def check_sign_in(self) -> Check:
        prof = self._profile()
        idp = self._sign_in_profile(prof)
        if idp is None:
            return Check("sign-in", SKIP, f"source {prof.kind} has no sign-in")
        if not kinds.person_signs_in(idp):
            return Check("sign-in", SKIP, f"flow {idp.values['flow']}: no person signs in")
        run = RunContext("background", interactive=False, timeout=self._silent())
        source = make_source(idp, self._links())
        assert isinstance(source, kinds.SigningIn)  # noqa: S101 - _sign_in_profile checked
        account, has_refresh, mode = source.sign_in_state(run)  # read only
        store_mode = mode
        where = "a user-only file" if store_mode == "file" else "the OS keychain"
        via = "" if idp is prof else f' (through profile "{idp.name}")'
        data: dict[str, Any] = {"signed_in": account is not None, "storage": store_mode}
        if account is None:
            self.not_signed_in = idp is prof
            fix = f"run: gatekey login -p {idp.name}"
            return Check("sign-in", FAIL, f"not signed in{via} (looked in {where})", [fix], data)
        data["account"] = account
        if not has_refresh:
            return Check(
                "sign-in",
                WARN,
                f"signed in as {account}{via}, but no refresh token is saved, so silent "
                "refreshes stop when the current token expires",
                [
                    "allow the app registration refresh tokens (offline_access), then run: "
                    f"gatekey login -p {idp.name}"
                ],
                data,
            )
        return Check("sign-in", OK, f"signed in as {account}{via}; kept in {where}", [], data)

    def _sign_in_profile(self, prof: config.Profile) -> config.Profile | None:
        """The profile whose sign-in ``prof`` needs: itself, or one it links to (a vault's
        auth.jwt_from, a Key Vault's credential_from)."""
        return kinds.sign_in_profile(self.cfg, prof)

    def _links(self) -> refresh.Links:
        return refresh.Links(self.cfg)

    # --- 4. clock --------------------------------------------------------------------------
    def check_clock(self) -> Check:
        # The source's server first: its clock stamped the token's times. Else the gateway's,
        # which judges them.
        date = self.server_date or (self.reached.date if self.reached else None)
        if date is None:
            return Check("clock", SKIP, "no server answered with a Date to compare with")
        theirs, ours, host = date
        finding = advice.clock(ours - theirs, host)
        data = {"skew_seconds": round(ours - theirs, 1), "server": host}
        return advice.combine(Check("clock", OK, "", [], data), [finding])

    # --- 5. token --------------------------------------------------------------------------
    def check_token(self) -> Check:
        prof = self._profile()
        if self.not_signed_in:
            return Check("token", SKIP, "not signed in (see the sign-in check)")
        from gatekey.refresh import get_token

        # A background run: silent only (never a browser or device code), the silent deadline.
        run = RunContext("background", interactive=False, timeout=self._silent())
        t0 = time.monotonic()
        outcome = get_token(prof, run, links=self._links())
        took = time.monotonic() - t0
        token = self.token = outcome.token
        logs.register_secret(token.value)
        how = {"fetched": "fetched from the source", "source": "read from the source"}.get(
            outcome.how, "from gatekey's cache"
        )
        detail = f"obtained silently, {how}, in {took:.1f} s; "
        if token.expires_at is not None and token.lifetime is not None:
            detail += f"lives {format_duration(token.lifetime)}, expires {when(token.expires_at)}"
        else:
            detail += "no stated expiry"
        data = {
            "how": outcome.how,
            "seconds": round(took, 2),
            "lifetime": token.lifetime,
            "expires_at": token.expires_at,
            "account": token.meta.get("account"),
        }
        if outcome.how == "fallback":
            return Check(
                "token",
                WARN,
                f"{detail}; but {'; '.join(outcome.warnings)}",
                [f"see the source check; then retry: gatekey get -p {prof.name} --force-refresh"],
                data,
            )
        budget = self.cfg.timeout("mid_session_refresh") if self.cfg else 15.0
        if outcome.how in ("fetched", "source") and took > budget:
            return Check(
                "token",
                WARN,
                f"{detail}; slower than the mid-session-refresh budget ({budget:g} s; the app "
                f"kills those runs at {claude_settings.MID_SESSION_CLAMP} s)",
                [f"see what is slow with: gatekey -v get -p {prof.name} --force-refresh"],
                data,
            )
        return Check("token", OK, detail, [], data)

    # --- 6. gateway -------------------------------------------------------------------------
    def check_gateway(self) -> Check:
        found, self.reached = gateway_probe.check(
            self._profile(), self.token, self.gateway_url, self.claude
        )
        return found

    # --- 6b. messages (--probe-messages: one billable request) --------------------------------
    def check_messages(self) -> Check:
        from gatekey.diagnostics import messages_probe

        return messages_probe.check(self._profile(), self.reached, self.model, self.token)

    # --- 7. ttl ------------------------------------------------------------------------------
    def check_ttl(self) -> Check:
        prof, cfg, claude = self._profile(), self.cfg, self.claude
        assert cfg is not None  # noqa: S101 - a profile implies a config
        findings: list[Check] = []
        if claude.problem:
            findings.append(Check("ttl", FAIL, claude.problem, [claude.fix] if claude.fix else []))
        ttl, bad_ttl = advice.seconds_setting(
            claude.values, claude_settings.TTL_KEY, claude_settings.DEFAULT_TTL, 0, 366 * 86400
        )
        timeout, bad_timeout = advice.seconds_setting(
            claude.values, claude_settings.TIMEOUT_KEY, claude_settings.DEFAULT_TIMEOUT, 1, 600
        )
        findings += [f for f in (bad_ttl, bad_timeout) if f is not None]
        lifetime = self.token.lifetime if self.token else None
        idp = self._sign_in_profile(prof)
        min_ttl = float(prof.values["min_ttl"])
        findings += advice.ttl(
            ttl=ttl,
            timeout=timeout,
            lifetime=lifetime,
            known=self.token is not None,
            min_ttl=min_ttl,
            silent=cfg.timeout("silent"),
            interactive=cfg.timeout("interactive")
            if idp is not None and kinds.person_signs_in(idp)
            else None,
            profile=prof.name,
        )
        where = claude.where or f"the app's defaults: no managed settings at {claude.looked[0]}"
        life = format_duration(lifetime) if lifetime is not None else "no stated expiry"
        mid = cfg.timeout("mid_session_refresh")
        detail = (
            f"Claude keeps a token {ttl} s and waits {timeout} s for the helper ({where}; "
            f"mid-session refreshes: {claude_settings.MID_SESSION_CLAMP} s at most, gatekey "
            f"uses {mid:g} s); token lifetime {life if self.token else 'unknown (no token)'}; "
            f"min_ttl {format_duration(min_ttl)}"
        )
        data = {
            "settings_from": claude.where,
            "ttl": ttl,
            "timeout": timeout,
            "lifetime": lifetime,
            "min_ttl": min_ttl,
            "mid_session_refresh": mid,
        }
        if not findings:
            findings.append(Check("ttl", OK, "these fit"))
        return advice.combine(Check("ttl", OK, detail, [], data), findings)

    # --- helpers -----------------------------------------------------------------------------
    def _profile(self) -> config.Profile:
        assert self.prof is not None  # noqa: S101 - _safely skips the checks that need one
        return self.prof

    def _silent(self) -> float:
        return self.cfg.timeout("silent") if self.cfg else 10.0

    def _explain(self, error: HelperError, check: str) -> tuple[str, list[str]]:
        """A failure as (what happened, [the next step]): the step the error carries, else one
        by kind of error."""
        name = self.name or "NAME"
        if isinstance(error, ConfigError):
            return str(error), ["correct the file and key named above (gatekey config validate)"]
        # Its profile is named only when it is another one (a linked profile's); the step apart.
        text = error.describe(where=error.profile != self.name, fix=False)
        if error.fix is not None:
            step = error.fix
            if isinstance(error, TemporaryFailure) and check == "token":
                step += f"; then retry: gatekey get -p {name} --force-refresh"
            return text, [step]
        if isinstance(error, InteractionRequired):
            if "keychain" in text:
                return text, ["unlock the keychain (sign in to the desktop session), then retry"]
            return text, [f"run: gatekey login -p {name}"]
        if isinstance(error, CredentialNotFound):
            return text, [f"see where the profile looks: gatekey config show -p {name}"]
        if isinstance(error, TemporaryFailure):
            return text, [
                "check the network or VPN (and HTTPS_PROXY), then retry: gatekey get -p "
                f"{name} --force-refresh"
            ]
        return text, [f"for more detail: gatekey -v get -p {name}"]
