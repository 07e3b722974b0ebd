"""A person signs in: in the browser (authorization code + PKCE on a loopback listener, or the
OS broker's window) or with a device code. The browser is started detached from our stdio (it may
outlive the run and must never write into the app's stdout pipe); instructions go to stderr, and
to a desktop notification when there is no terminal. While it waits for the person, a countdown
says so (gatekey.waiting). Every wait ends before the run's deadline, as exit 4 whose next step is
another way to sign in (never the very command that just timed out), not as the watchdog's 75."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import webbrowser
from typing import TYPE_CHECKING, Any

from gatekey import waiting
from gatekey.context import RunContext
from gatekey.durations import format_duration
from gatekey.errors import DeadlineExceeded, InteractionRequired
from gatekey.sources.idp.results import raise_for

if TYPE_CHECKING:
    from gatekey.sources.idp.settings import IdpSettings

log = logging.getLogger(__name__)

# The RunContext name of `gatekey login` (cli): its own command is no next step after a timeout.
LOGIN_RUN = "login"


def sign_in(
    settings: IdpSettings, app: Any, run: RunContext, flow: str | None = None
) -> dict[str, Any]:
    """A person signs in (``flow``, else the profile's); MSAL's answer, usable."""
    if (flow or settings.flow) == "device-code":
        return device_code(settings, app, run)
    return browser(settings, app, run)


def browser(settings: IdpSettings, app: Any, run: RunContext) -> dict[str, Any]:
    """Authorization code + PKCE: a loopback listener receives the code; we open the browser.

    MSAL's ``acquire_token_interactive`` cannot add parameters to the authorize URL (Auth0's
    ``audience``, ``authorize_params``), so outside the broker the flow is driven through
    MSAL's public pieces: ``initiate_auth_code_flow`` builds the URL (PKCE, state, nonce),
    its loopback receiver takes the answer, ``acquire_token_by_auth_code_flow`` redeems it.
    """
    import msal

    launcher = DetachedBrowser(settings.values["browser_command"], profile=settings.name)
    left = run.check("starting the browser sign-in")
    # End before the deadline (the watchdog acts there): a wait that would run past it
    # has already failed, and says so as the exit 4 it is, not as a watchdog's 75.
    timeout = left - 0.5
    not_finished = InteractionRequired(
        f"the browser sign-in did not finish within {format_duration(run.timeout)}",
        profile=settings.name,
        fix=_browser_fix(settings.name, run),
    )
    if timeout < 0.1:
        raise not_finished
    if settings.values.get("broker"):
        # Where the broker is missing, MSAL falls back to a browser: ours, detached.
        webbrowser.register("gatekey", None, launcher, preferred=True)
        # The broker shows its own window; MSAL needs a parent, and a console is ours.
        try:
            with waiting.Countdown(
                "waiting for the sign-in in the broker's window", time.monotonic() + timeout
            ):
                result = app.acquire_token_interactive(
                    settings.scopes,
                    login_hint=settings.values["login_hint"],
                    timeout=timeout,
                    parent_window_handle=app.CONSOLE_WINDOW_HANDLE,
                )
        except (msal.BrowserInteractionTimeoutError, DeadlineExceeded):
            raise not_finished from None
    else:
        result = _loopback_sign_in(settings, app, time.monotonic() + timeout, launcher)
    if not result or result.get("error") == "timeout":
        raise not_finished
    raise_for(settings, result, "signing in in the browser")
    return dict(result)


def _loopback_sign_in(
    settings: IdpSettings, app: Any, ends: float, launcher: DetachedBrowser
) -> dict[str, Any] | None:
    from urllib.parse import urlencode

    from msal.oauth2cli.authcode import AuthCodeReceiver

    with AuthCodeReceiver(port=0) as receiver:
        flow = app.initiate_auth_code_flow(
            settings.scopes,
            redirect_uri=f"http://localhost:{receiver.get_port()}",
            login_hint=settings.values["login_hint"],
            response_mode="form_post",  # what MSAL's receiver accepts
        )
        auth_uri = str(flow["auth_uri"])
        if settings.authorize_params:
            auth_uri += "&" + urlencode(settings.authorize_params)
        # Opened here rather than by MSAL's receiver (its thread would print the URL in the
        # middle of the countdown); the listener is bound already, so an early answer waits.
        launcher.open(auth_uri)
        with waiting.Countdown("waiting for the sign-in in the browser", ends):
            # The receiver looks for the answer once a second, so it gives up on the first
            # whole second at or past its timeout (a wait of 1.9 s would last 2, and could meet
            # the watchdog): wait out the fraction first (an answer meanwhile queues on the
            # bound listener), then the whole seconds left, so that the wait ends by ``ends``.
            left = ends - time.monotonic()
            whole = int(left)
            time.sleep(max(left - whole, 0.0))
            if whole < 1:
                return None
            response = receiver.get_auth_response(
                state=flow["state"],
                timeout=whole,
                success_template="Signed in to gatekey. You can close this tab.",
            )
    if not response:
        return None  # timed out, or an answer with the wrong state
    result = app.acquire_token_by_auth_code_flow(flow, response, data=settings.extra)
    return dict(result) if result else None


def device_code(settings: IdpSettings, app: Any, run: RunContext) -> dict[str, Any]:
    flow = app.initiate_device_flow(scopes=settings.scopes)  # MSAL sets its own data here
    if "user_code" not in flow:
        raise_for(settings, flow, "starting the device-code sign-in")
    uri = flow.get("verification_uri") or flow.get("verification_url") or ""
    message = (
        f"to sign in to profile {settings.name}, open {uri} and enter the code {flow['user_code']}"
    )
    complete = flow.get("verification_uri_complete")
    if complete:
        message += f" (or open {complete})"
    _tell_person(message)
    # Bounded by the code's own expiry and by this run's deadline, whichever comes first.
    # MSAL checks the expiry once a second while it waits between polls: stop a second
    # early, so that the run ends (exit 4) before the watchdog's deadline.
    flow["expires_at"] = min(float(flow["expires_at"]), time.time() + run.remaining() - 1.0)
    not_approved = InteractionRequired(
        "the device code was not entered and approved in time "
        f"({format_duration(run.timeout)} allowed)",
        profile=settings.name,
        fix=_device_code_fix(settings.name, run),
    )
    ends = time.monotonic() + (float(flow["expires_at"]) - time.time())
    try:
        with waiting.Countdown(f"waiting for the code to be approved at {uri}", ends):
            result = app.acquire_token_by_device_flow(flow, data=settings.extra)
    except DeadlineExceeded:
        raise not_approved from None
    if result.get("error") in ("expired_token", "authorization_pending", "slow_down"):
        raise not_approved
    raise_for(settings, result, "signing in with the device code")
    return dict(result)


def _browser_fix(profile: str, run: RunContext) -> str:
    """After a browser sign-in timed out: another way in, never the command just run."""
    device = f"gatekey login -p {profile} --device-code"
    reason = waiting.no_browser_reason()
    if run.name != LOGIN_RUN:  # an app's interactive run: the login command is the next step
        return f"run: {device} ({reason})" if reason else f"run: gatekey login -p {profile}"
    if reason:
        return f"{reason}, so a browser here cannot reach you; sign in on another device: {device}"
    return (
        "finish signing in in the browser window that opened (or open the URL above in a "
        f"browser on this machine) in time, or sign in on another device: "
        f"{device}"
    )


def _device_code_fix(profile: str, run: RunContext) -> str:
    """After a device code timed out: what to do differently, never the command just run."""
    if run.name != LOGIN_RUN:
        return f"run: gatekey login -p {profile}"
    fix = (
        "open the URL on any device (a phone works), enter the code and approve the sign-in "
        "in time (timeouts.interactive sets how long gatekey waits)"
    )
    if waiting.no_browser_reason() is None:
        fix += f"; or sign in in a browser on this machine: gatekey login -p {profile} --browser"
    return fix


class DetachedBrowser(webbrowser.BaseBrowser):
    """A ``webbrowser`` browser that starts the configured command detached from our stdio.

    The browser may outlive gatekey; started in its own session with stdin/stdout/stderr on
    /dev/null it can neither hold the app's stdout pipe open nor write into it. The URL is always
    printed on stderr too, for a person whose browser did not come up.
    """

    def __init__(self, command: list[str] | None, *, profile: str) -> None:
        super().__init__("gatekey")
        self.command = command or _browser_from_environment()
        self.profile = profile

    def tell(self, url: str) -> None:
        _tell_person(f"to sign in to profile {self.profile}, open {url}")

    def open(self, url: str, new: int = 0, autoraise: bool = True) -> bool:
        self.tell(url)
        if not self.command:
            return False
        argv = [part.replace("%s", url) for part in self.command]
        if not any("%s" in part for part in self.command):
            argv.append(url)
        try:
            subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=sys.platform != "win32",
                close_fds=True,
            )
        except OSError as e:
            log.warning("could not start the browser %s (%s)", argv[0], e.strerror)
            return False
        return True

    def open_new(self, url: str) -> bool:
        return self.open(url, 1)

    def open_new_tab(self, url: str) -> bool:
        return self.open(url, 2)


def _browser_from_environment() -> list[str] | None:
    """$BROWSER (its first entry), else the platform's opener."""
    import shlex

    for entry in os.environ.get("BROWSER", "").split(os.pathsep):
        if entry.strip():
            return shlex.split(entry)
    if sys.platform == "darwin":
        return ["open"]
    if sys.platform == "win32":
        return ["rundll32", "url.dll,FileProtocolHandler"]
    opener = shutil.which("xdg-open")
    return [opener] if opener else None


def _tell_person(message: str) -> None:
    """Show a sign-in instruction on stderr, and as a desktop notification with no terminal."""
    waiting.say(message)
    if waiting.is_terminal(sys.stderr):
        return
    notifier: list[str] | None = None
    if sys.platform == "darwin" and shutil.which("osascript"):
        script = f'display notification {json.dumps(message)} with title "gatekey sign-in"'
        notifier = ["osascript", "-e", script]
    elif shutil.which("notify-send"):
        notifier = ["notify-send", "gatekey sign-in", message]
    if notifier:
        with contextlib.suppress(OSError):
            subprocess.Popen(
                notifier,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
