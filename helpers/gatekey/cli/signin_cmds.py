"""`gatekey login` and `gatekey logout`, and what they tell the person at the terminal: that they
are already signed in, that a browser here cannot reach them (offer a device code), and which
other profiles a logout signs out with this one. Questions are asked on a terminal only; a script
gets one line saying what was decided and why (or passes --yes)."""

from __future__ import annotations

import contextlib
import sys
import time

import click

from gatekey import config, context, kinds, waiting
from gatekey.cache import FileCache
from gatekey.cli.common import State, note, pass_state, profile_option
from gatekey.durations import format_duration
from gatekey.errors import HelperError, UsageProblem

SHARED_SIGN_IN = "they share its sign-in: the same client at the same identity provider"


def can_ask() -> bool:
    """Whether a person can answer a question: a terminal to read from and one to ask on."""
    return waiting.is_terminal(sys.stdin) and waiting.is_terminal(sys.stderr)


def confirm(question: str, *, default: bool) -> bool:
    """Ask on the terminal (the caller checked can_ask); the answer. Ctrl-C or Ctrl-D stops the
    command as an interrupt (exit 130), having done nothing."""
    try:
        return click.confirm(f"gatekey: {question}", default=default, err=True, prompt_suffix=" ")
    except click.Abort:
        click.echo(err=True)  # the prompt's line is left open
        raise KeyboardInterrupt from None


def others_of(cfg: config.Config, prof: config.Profile) -> list[config.Profile]:
    """Every other profile of the config that loads (a broken one cannot share anything)."""
    found = []
    for name in cfg.profile_names:
        if name == prof.name:
            continue
        try:
            found.append(cfg.profile(name))
        except HelperError:
            continue
    return found


def depending_on(cfg: config.Config, names: set[str]) -> list[str]:
    """Profiles (outside ``names``) that link to one of ``names``: a vault's auth.jwt_from, a
    ``{ keychain = ... }`` secret reference. What happens to those happens to them."""
    found = []
    for name in cfg.profile_names:
        if name in names:
            continue
        try:
            links = kinds.links(cfg.profile(name))
        except HelperError:
            continue
        if any(target in names for _key, target in links):
            found.append(name)
    return found


def listing(names: list[str]) -> str:
    quoted = [f'"{n}"' for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


# --- login --------------------------------------------------------------------------------------
@click.command("login")
@profile_option
@click.option(
    "--device-code",
    is_flag=True,
    help="This once, sign in with a code on another device (SSH, no display).",
)
@click.option("--browser", is_flag=True, help="This once, sign in in a browser on this machine.")
@click.option(
    "-y",
    "--yes",
    "--force",
    "force",
    is_flag=True,
    help="Sign in again without asking when already signed in.",
)
@pass_state
def login(st: State, profile: str | None, device_code: bool, browser: bool, force: bool) -> None:
    """Sign in interactively (whatever CLAUDE_HELPER_CONTEXT says), so later runs are silent."""
    if device_code and browser:
        raise click.UsageError("--device-code and --browser pick opposite flows: give one")
    flow = "device-code" if device_code else "browser" if browser else None
    st.guard(lambda: _login(st, profile, flow, force))


def _login(st: State, profile: str | None, flow: str | None, force: bool) -> None:
    from gatekey.refresh import Links, make_source, profile_cache_key

    cfg = config.load()
    prof = cfg.profile(config.select_profile(cfg, profile, st.family))
    source = make_source(prof, Links(cfg))
    option = f"--{flow}"
    if not isinstance(source, kinds.SigningIn):
        if flow:
            raise UsageProblem(
                option, f'profile "{prof.name}" uses source {prof.kind!r}, which has no sign-in'
            )
        raise HelperError(f"uses source {prof.kind!r}, which has no sign-in", profile=prof.name)
    flows = source.sign_in_flows(prof)
    if flow and flow not in flows:
        raise UsageProblem(
            option,
            f'no person signs in to profile "{prof.name}" (source {prof.kind!r}), so there is '
            "no sign-in flow to pick"
            if not flows
            else f'profile "{prof.name}" cannot sign in with {flow}',
        )
    run = context.RunContext(
        "login", interactive=True, timeout=cfg.timeout("interactive"), force_refresh=True
    )
    cache = FileCache()
    key = profile_cache_key(prof)
    if flows and not force and not _sign_in_again(source, prof, run, cache.read(key)[0]):
        return
    if flow is None and flows:
        flow = _offer_device_code(prof.name, flows)
    with cache.lock(key, run):
        token = source.login(run, flow=flow)
        cache.write(key, token)
        cache.clear_failure(key)
    who = token.meta.get("account")
    note(f'profile "{prof.name}": signed in' + (f" as {who}" if who else ""))


def _sign_in_again(
    source: kinds.SigningIn, prof: config.Profile, run: context.RunContext, cached: object
) -> bool:
    """Whether to go on when the profile is already signed in: asked on a terminal; without
    one, yes (the command asked for a sign-in, a script may be switching accounts, and nobody
    can answer), said in one line."""
    try:
        account, has_refresh, _storage = source.sign_in_state(run)
    except HelperError:
        return True  # cannot tell (keychain locked...): the sign-in will say what is wrong
    expires_at = getattr(cached, "expires_at", None)
    now = time.time()
    if account is None or not (has_refresh or (expires_at and expires_at > now)):
        return True
    if expires_at and expires_at > now:
        at = time.strftime("%H:%M", time.localtime(expires_at))
        detail = f"token expires in {format_duration(expires_at - now)}, at {at}"
    else:
        detail = "its token is renewed silently when needed"
    said = f'profile "{prof.name}": already signed in as {account} ({detail})'
    if not can_ask():
        note(f"{said}; signing in again, as asked (no terminal to confirm on; --yes skips this)")
        return True
    if confirm(f"{said}; sign in again?", default=False):
        return True
    note(f'profile "{prof.name}": kept the sign-in as {account}')
    return False


def _offer_device_code(name: str, flows: tuple[str, ...]) -> str | None:
    """The flow for this login when none was picked: where a browser here cannot reach the
    person (SSH, no display), offer the device code (asked on a terminal, else said)."""
    reason = waiting.no_browser_reason()
    if reason is None or flows[0] != "browser" or "device-code" not in flows:
        return None
    command = f"gatekey login -p {name} --device-code"
    if not can_ask():
        note(f"{reason}: if no browser reaches you, sign in on another device with: {command}")
        return None
    question = (
        f"{reason}, so a browser here may not reach you; sign in with a code on another "
        "device instead (--device-code)?"
    )
    return "device-code" if confirm(question, default=True) else "browser"


# --- logout -------------------------------------------------------------------------------------
@click.command("logout")
@profile_option
@click.option("--all", "all_accounts", is_flag=True, help="Forget every account of the profile.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before signing out other profiles too.")
@pass_state
def logout(st: State, profile: str | None, all_accounts: bool, yes: bool) -> None:
    """Forget a profile's sign-in and cached tokens; later silent runs need a new login."""
    st.guard(lambda: _logout(st, profile, all_accounts, yes))


def _logout(st: State, profile: str | None, all_accounts: bool, yes: bool) -> None:
    from gatekey.refresh import Links, make_source, profile_cache_key

    cfg = config.load()
    prof = cfg.profile(config.select_profile(cfg, profile, st.family))
    source = make_source(prof, Links(cfg))
    run = context.RunContext("logout", interactive=False, timeout=cfg.timeout("silent"))
    others = {p.name: p for p in others_of(cfg, prof)}
    also: list[str] = []
    linked: list[str] = []
    if isinstance(source, kinds.SigningIn):
        with contextlib.suppress(HelperError):  # unreadable state: the logout will say why
            also = source.also_signed_out(run, others.values(), all_accounts=all_accounts)
        if also or _signed_in(source, run):  # a vault's auth.jwt_from loses its sign-in too
            linked = depending_on(cfg, {prof.name, *also})
    effects = _logout_effects(also, linked)
    if effects and not yes and can_ask():
        joined = "; ".join(effects)
        question = f'signing out profile "{prof.name}"{"" if also else ":"} {joined}. Go on?'
        if not confirm(question, default=False):
            raise HelperError("nothing was signed out", profile=prof.name)
    cache = FileCache()
    removed = cache.delete(profile_cache_key(prof))
    if isinstance(source, kinds.SigningIn):
        removed = bool(source.logout(run, all_accounts=all_accounts)) or removed
    for name in also:  # signed out too: their cached tokens must not outlive the sign-in
        cache.delete(profile_cache_key(others[name]))
    if not (removed or also):
        note(f'profile "{prof.name}": was not signed in')
        return
    done = _logout_effects(also, linked, done=True)
    note(f'profile "{prof.name}": signed out' + "".join(f"; {effect}" for effect in done))


def _signed_in(source: kinds.SigningIn, run: context.RunContext) -> bool:
    try:
        return source.sign_in_state(run).account is not None
    except HelperError:
        return True  # cannot tell: name what depends on it rather than stay silent


def _logout_effects(also: list[str], linked: list[str], *, done: bool = False) -> list[str]:
    """What a logout does beyond its own profile, before (``signs out``) or after."""
    effects = []
    if also:
        verb = "also signed out" if done else "also signs out"
        effects.append(f"{verb} {listing(also)} ({SHARED_SIGN_IN})")
    if linked:
        verb = "sign" if len(linked) > 1 else "signs"
        through = "them" if also else "it"
        effects.append(f"{listing(linked)} {verb} in through {through} and will need a login too")
    return effects
