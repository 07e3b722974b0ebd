"""`gatekey check`: run a credential helper exactly as the app does, once per context, and judge it.

Which helper: ``--helper PATH``; else, without ``-p``, the ``inferenceCredentialHelper`` Claude's
managed settings name (claude_settings; what Claude will run); else this gatekey executable
(with ``-p``: pinned to that profile through GATEKEY_PROFILE). A helper path that someone other
than you and root could replace is refused (exit 78) unless ``--force`` (helper_path.py): check
would run it with your environment.

Each run is what Claude Desktop / Cowork does (reference/contract.md): the executable by absolute
path, no arguments, stdin at end of file (/dev/null), the filesystem root as working directory,
its own process group (killed whole at the time limit), and a minimal environment:

- PATH, HOME, USER, LOGNAME, LANG, LC_ALL, LC_CTYPE, TMPDIR, DBUS_SESSION_BUS_ADDRESS;
- what the desktop session gives an app, so that a sign-in can open a browser as it would for
  a person at Claude: DISPLAY, WAYLAND_DISPLAY, XAUTHORITY, BROWSER, DESKTOP_SESSION and the
  desktops' own session variables (GNOME_DESKTOP_SESSION_ID, KDE_FULL_SESSION,
  KDE_SESSION_VERSION); the same in every context, as the app's own environment is;
- every XDG_* and GATEKEY_* variable (GATEKEY_PROFILE set to -p's profile);
- the proxy variables HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY (either case);
- on Windows also SYSTEMROOT, SYSTEMDRIVE, WINDIR, COMSPEC, PATHEXT, TEMP, TMP, USERPROFILE,
  USERNAME, HOMEDRIVE, HOMEPATH, APPDATA, LOCALAPPDATA, PROGRAMDATA (Python needs them);
- CLAUDE_HELPER_CONTEXT for the context under test (absent for "unset"), plus
  CLAUDE_HELPER_MANUAL_RUN=1 with setup-test, as the app sets it.
Anything else in the shell (VAULT_ADDR, AWS_PROFILE, ...) is deliberately missing: the app is
started from the desktop, not from the admin's shell.

Time limits: mid-session-refresh 20 s (the app's clamp); otherwise, for gatekey (or a wrapper of
it), gatekey's configured ``[timeouts]`` (interactive; silent for the other contexts and "unset",
which without a terminal is silent); for a ``--helper``, the app's default
inferenceCredentialHelperTimeoutSec of 60 s; for another program Claude's settings name, their
inferenceCredentialHelperTimeoutSec (else 60 s). ``--timeout`` checks against another app
timeout. The interactive context is skipped unless ``--interactive`` is given: a sign-in may open
a browser.

For tests only (not in --help): GATEKEY_CHECK_TIME_SCALE=0.05 multiplies every limit, so a
helper that overruns the 20 s clamp is caught in one second.

``--surface mcp|otlp|marketplace|api-key-helper`` runs a sibling helper as that surface does
instead (surfaces.py holds each one's contract; check_surface.py runs it): no
CLAUDE_HELPER_CONTEXT, the surface's limit and parser, run again as the app re-runs it. Its
default helper is the one Claude's managed settings name for that surface, when they do.

Here: the contexts, their limits and the report. check_harness.py runs a helper, check_judge.py
judges a run, report.py renders the table.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gatekey import config, context
from gatekey.diagnostics import advice, claude_settings, helper_path, surfaces
from gatekey.diagnostics.check_harness import SCALE_ENV, minimal_env, run_helper
from gatekey.diagnostics.check_judge import judge, stderr_tail
from gatekey.errors import ConfigError, HelperError

CONTEXTS = (context.INTERACTIVE, context.MID_SESSION, *context.SILENT_CONTEXTS, "unset")
APP_DEFAULT_TIMEOUT = 60.0  # inferenceCredentialHelperTimeoutSec's default
APP_MID_SESSION_CLAMP = 20.0


def default_helper(family: str | None) -> str:
    """The installed executable this command belongs to (gatekey, gatekey-vault, ...)."""
    name = "gatekey" if family is None else f"gatekey-{family}"
    names = (name + ".exe", name) if sys.platform == "win32" else (name,)
    candidates = []
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0) in names:
        candidates.append(argv0 if os.path.dirname(argv0) else shutil.which(argv0) or "")
    # python -m gatekey: the scripts next to this interpreter (a venv's bin), then the scheme's.
    for folder in (os.path.dirname(sys.executable), sysconfig.get_path("scripts")):
        candidates += [os.path.join(folder, n) for n in names]
    candidates.append(shutil.which(name) or "")
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return os.path.abspath(path)
    raise HelperError(f"cannot find the installed {name} executable; give it with --helper PATH")


def _limits(cfg: config.Config | None, app_timeout: float | None) -> dict[str, float]:
    if app_timeout is not None:
        limits = dict.fromkeys(CONTEXTS, app_timeout)
    elif cfg is None:
        limits = dict.fromkeys(CONTEXTS, APP_DEFAULT_TIMEOUT)
    else:
        limits = dict.fromkeys(CONTEXTS, cfg.timeout("silent"))
        limits[context.INTERACTIVE] = cfg.timeout("interactive")
    # The app's own clamp, whatever the helper configured for itself (gatekey stays below it).
    limits[context.MID_SESSION] = min(app_timeout or APP_MID_SESSION_CLAMP, APP_MID_SESSION_CLAMP)
    return limits


def _time_scale() -> float:
    raw = os.environ.get(SCALE_ENV, "").strip()
    try:
        scale = float(raw) if raw else 1.0
    except ValueError:
        scale = 0.0
    if not 0 < scale <= 1:
        raise HelperError(f"{SCALE_ENV} must be a number in (0, 1] (it is for tests)")
    return scale


def _quiet(_text: str) -> None:
    pass


@dataclass
class Target:
    """The executable check runs, and what judges it."""

    path: str
    cfg: config.Config | None = None  # gatekey's config: its [timeouts] are the limits
    profile: str | None = None  # the profile the runs use, for the report
    app_timeout: float | None = None


def check(
    family: str | None,
    profile: str | None,
    helper: str | None,
    app_timeout: float | None,
    interactive: bool,
    *,
    surface: str = surfaces.INFERENCE,
    force: bool = False,
    note: Callable[[str], None] = _quiet,
) -> dict[str, Any]:
    """Run every context (or the surface's runs) and return the report (no secret in it).
    ``force``: run a helper that others could replace, after ``note`` warns of it."""
    spec = surfaces.SURFACES[surface]
    notes: list[str] = []
    named: surfaces.Named | None = None
    if helper is not None:
        target = _given(helper, "--helper", notes, force, note)
        target.profile, target.app_timeout = profile, app_timeout
    elif spec.contexts:
        target = _default(family, profile, app_timeout, notes, force, note)
    else:
        target, named = _surface_default(spec, family, profile, notes, force, note)
    path, cfg, app_timeout = target.path, target.cfg, target.app_timeout
    scale = _time_scale()
    if scale != 1:
        notes.append(f"limits scaled by {scale:g} ({SCALE_ENV}; for tests)")
    environ = dict(os.environ)
    found: dict[str, Any] = {"helper": path, "profile": target.profile, "surface": spec.name}
    found.update(setting=spec.what, expects=spec.expects)
    if not spec.contexts:
        from gatekey.diagnostics.check_surface import run_surface

        notes += [n for n in (spec.context_note, spec.limit_note, spec.rerun_note) if n]
        ttl = surfaces.app_ttl(spec, named, environ)
        runs = run_surface(spec, path, profile, scale, ttl, environ)
        return _report(found, runs, scale, minimal_env("unset", profile, environ), notes)
    limits = _limits(cfg, app_timeout)
    runs = []
    for ctx in CONTEXTS:
        nominal = limits[ctx]
        row: dict[str, Any] = {"context": ctx, "limit": nominal * scale}
        if scale != 1:
            row["nominal_limit"] = nominal
        if ctx == context.INTERACTIVE and not interactive:
            row.update(verdict="skip", exit_code=None, seconds=None, within_limit=None)
            row.update(output=None, problems=[], warnings=[], stderr=None)
            row["note"] = "not run: a sign-in may open a browser; --interactive runs it"
            runs.append(row)
            continue
        env = minimal_env(ctx, profile, environ)
        cap = run_helper(path, env, nominal * scale)
        j = judge(ctx, cap, nominal * scale, nominal)
        row.update(
            verdict="fail" if j.problems else "warn" if j.warnings else "ok",
            exit_code=cap.code,
            seconds=None if cap.start_error else round(cap.seconds, 3),
            within_limit=None if cap.start_error else not (cap.timed_out or cap.held_open),
            output=None
            if j.payload is None
            else {
                "kind": j.payload.kind,
                "token": "<redacted>",
                "token_length": len(j.payload.token),
                "headers": j.payload.headers,
            },
            problems=j.problems,
            warnings=j.warnings,
            stderr=stderr_tail(cap.stderr) if j.problems else None,
        )
        runs.append(row)
    return _report(found, runs, scale, minimal_env("setup-test", profile, environ), notes)


def _report(
    found: dict[str, Any],
    runs: list[dict[str, Any]],
    scale: float,
    env: dict[str, str],
    notes: list[str],
) -> dict[str, Any]:
    """The report: ``env`` is a run's environment (its names are shown, never its values)."""
    env_names = sorted(env)
    found.update(
        passed=all(r["verdict"] != "fail" for r in runs),
        time_scale=scale,
        environment=env_names,
        notes=notes,
        runs=runs,
    )
    return found


def _surface_default(
    spec: surfaces.Surface,
    family: str | None,
    profile: str | None,
    notes: list[str],
    force: bool,
    note: Callable[[str], None],
) -> tuple[Target, surfaces.Named | None]:
    """Without --helper: the helper Claude's managed settings name for the surface (unless -p),
    else this gatekey (pinned to -p's profile, or the one a run with no arguments selects)."""
    named, where = None, None
    if spec.settings_key is not None:
        claude = claude_settings.read()
        where = claude.where
        named = surfaces.named_helper(spec, claude.values.get(spec.settings_key))
        if named is not None and claude.problem:
            notes.append(f"{claude.problem}: checking this gatekey, not the helper it names")
            named = None
        if named is not None and profile is not None:
            notes.append(f"Claude runs {named.path} ({named.where}); without -p, check runs that")
            named = None
    elif spec.settings_note and profile is None:
        notes.append(spec.settings_note)
    if named is None:
        cfg = config.load()
        selected = config.select_profile(cfg, profile, family)
        prof = cfg.profile(selected)  # an unknown or broken profile stops here, exit 78
        notes.append(f"profile {selected} (source {prof.kind})")
        return Target(default_helper(family), cfg, selected), None
    option = f"{named.where} in {where}"
    notes.append(f"the helper Claude runs: {option}")
    notes += [f"also named: {other} (check it with --helper)" for other in named.others]
    target = _given(named.path, option, notes, force, note)
    found = helper_path.read_helper(target.path)
    if found.is_gatekey:
        target.cfg, target.profile = _gatekey_config(found, notes)
    return target, named


def _given(
    helper: str, option: str, notes: list[str], force: bool, note: Callable[[str], None]
) -> Target:
    """A helper named by ``option`` (--helper, or Claude's setting)."""
    path = os.path.abspath(helper)
    if path != helper:
        notes.append(f"the app needs an absolute path: checking {path}")
    if " " in helper and not os.path.exists(path):
        notes.append("the app takes the whole value as one file name: no arguments")
    helper_path.refuse_replaceable(path, option, force=force, note=note)
    return Target(path)


def _default(
    family: str | None,
    profile: str | None,
    app_timeout: float | None,
    notes: list[str],
    force: bool,
    note: Callable[[str], None],
) -> Target:
    """Without --helper: what Claude's managed settings name (unless -p), else this gatekey."""
    claude = claude_settings.read()
    value = claude.values.get(claude_settings.HELPER_KEY)
    if value is not None and claude.problem:
        notes.append(f"{claude.problem}: checking this gatekey, not the helper it names")
        value = None
    if value is not None and profile is not None:
        key = claude_settings.HELPER_KEY
        notes.append(f"Claude runs {value} ({key}); without -p, check runs that")
        value = None
    if value is None:
        cfg = config.load()
        selected = config.select_profile(cfg, profile, family)
        prof = cfg.profile(selected)  # an unknown or broken profile stops here, exit 78
        notes.append(f"profile {selected} (source {prof.kind})")
        return Target(default_helper(family), cfg, selected, app_timeout)
    option = f"{claude_settings.HELPER_KEY} in {claude.where}"
    notes.append(f"the helper Claude runs: {option}")
    target = _given(value, option, notes, force, note)
    found = helper_path.read_helper(target.path)
    target.app_timeout = app_timeout
    if found.is_gatekey:
        target.cfg, target.profile = _gatekey_config(found, notes)
    elif app_timeout is None:  # another program: judged by the timeout Claude gives it
        target.app_timeout = advice.seconds_setting(
            claude.values, claude_settings.TIMEOUT_KEY, claude_settings.DEFAULT_TIMEOUT, 1, 600
        )[0]
    return target


def _gatekey_config(
    found: helper_path.HelperFile, notes: list[str]
) -> tuple[config.Config | None, str | None]:
    """gatekey's config and the profile the configured gatekey (or wrapper) runs; (None, None)
    when the config refuses (every run will show why)."""
    try:
        cfg = config.load()
        selected = config.select_profile(cfg, found.pinned, found.family)
        cfg.profile(selected)
    except ConfigError as e:
        notes.append(f"gatekey's config: {e}")
        return None, None
    how = "pinned by the wrapper" if found.pinned else "a run with no arguments selects it"
    notes.append(f"profile {selected} ({how})")
    return cfg, selected
