"""Doctor's look at what Claude will run: its managed settings (the "claude" check) and the
helper they name (the "helper" check). No I/O but reading the settings and the helper file;
nothing is run, and no credential value is read (only which credential keys are set).

claude   the settings are used (found, accepted), ``inferenceProvider`` is ``gateway``, and
         ``inferenceCredentialKind`` selects the helper: unset with several credential keys
         present, the app picks one by its own precedence and may fall back to another
helper   ``inferenceCredentialHelper``: absolute, one file with no arguments, there, executable,
         its ``#!`` interpreter there, nobody but you and root able to replace it (or a directory
         above it); then what it is: gatekey itself (which profile a no-argument run selects), a
         ``gatekey wrap`` wrapper (the profile it pins, and the gatekey it runs, checked the same
         way), or another program (doctor's other checks do not describe it)
"""

from __future__ import annotations

import os
import stat

from gatekey import config
from gatekey.checks import FAIL, OK, SKIP, WARN, Check
from gatekey.diagnostics import advice
from gatekey.diagnostics.claude_settings import (
    HELPER_KEY,
    HELPER_KIND,
    KIND_KEY,
    PROVIDER_KEY,
    ClaudeSettings,
)
from gatekey.diagnostics.helper_path import HelperFile, read_helper, replaceable
from gatekey.errors import ConfigError

GATEWAY = "gateway"
WRAP_FIX = "pin the profile with a wrapper instead: gatekey wrap -p PROFILE -o /path/to/wrapper"


def configured_helper(claude: ClaudeSettings) -> HelperFile | None:
    """The helper Claude's managed settings name, looked at; None if they name none, or if
    Claude ignores them."""
    value = claude.values.get(HELPER_KEY)
    if value is None or claude.problem:
        return None
    return read_helper(value)


# --- claude ------------------------------------------------------------------------------------
def claude_check(claude: ClaudeSettings) -> Check:
    if claude.where is None:
        return Check(
            "claude",
            SKIP,
            f"no managed settings ({'; '.join(claude.looked)}); settings saved in Claude's own "
            "configuration window are not read here",
        )
    values, where = claude.values, claude.where
    provider, kind = values.get(PROVIDER_KEY), values.get(KIND_KEY)
    present = claude.credentials
    data = {
        "settings_from": where,
        "provider": provider,
        "credential_kind": kind,
        "credential_keys": list(present),
    }
    if claude.problem:
        return Check("claude", FAIL, claude.problem, [claude.fix] if claude.fix else [], data)
    findings = []
    if provider != GATEWAY:
        findings.append(
            Check(
                "claude",
                FAIL,
                f"{PROVIDER_KEY} is {_shown(provider)}: Claude uses the gateway settings, and "
                f"runs a credential helper for them, only with {PROVIDER_KEY} = {GATEWAY}",
                [f'set {PROVIDER_KEY} to "{GATEWAY}" in {where} (gatekey mdm writes it)'],
            )
        )
    if kind is None and len(present) > 1:
        others = [k for k in present if k != HELPER_KEY]
        findings.append(
            Check(
                "claude",
                WARN,
                f"{KIND_KEY} is not set and {' and '.join(present)} are all set: Claude then "
                "picks one by its own precedence and can fall back to another",
                [
                    f'set {KIND_KEY} to "{HELPER_KIND}" and remove {" and ".join(others)} '
                    "(a static credential is the same on every machine)"
                ],
            )
        )
    elif kind is not None and kind != HELPER_KIND and HELPER_KEY in present:
        findings.append(
            Check(
                "claude",
                FAIL,
                f"{KIND_KEY} is {kind!r}, so Claude does not run the {HELPER_KEY}",
                [f'set {KIND_KEY} to "{HELPER_KIND}" in {where}'],
            )
        )
    detail = (
        f"{where}: {PROVIDER_KEY} {_shown(provider)}, {KIND_KEY} {_shown(kind)}, credential "
        f"keys: {', '.join(present) or 'none'}"
    )
    return advice.combine(Check("claude", OK, detail, [], data), findings)


def _shown(value: str | None) -> str:
    return "not set" if value is None else repr(value) if value != GATEWAY else value


# --- helper ------------------------------------------------------------------------------------
def helper_check(
    claude: ClaudeSettings,
    helper: HelperFile | None,
    cfg: config.Config | None,
    checked: str | None,
) -> Check:
    """``checked``: the profile the rest of doctor checks (None: the config check failed)."""
    if claude.where is None or claude.problem:
        return Check("helper", SKIP, "no managed settings Claude uses (see the claude check)")
    if helper is None:
        if claude.values.get(KIND_KEY) == HELPER_KIND:
            return Check(
                "helper",
                FAIL,
                f"{KIND_KEY} is {HELPER_KIND}, but {claude.where} names no {HELPER_KEY}",
                [f"add {HELPER_KEY} = the absolute path of gatekey (gatekey mdm writes it)"],
            )
        return Check(
            "helper",
            WARN,
            f"{claude.where} names no {HELPER_KEY}, so Claude does not run gatekey",
            [f"add {HELPER_KEY} = the absolute path of gatekey (gatekey mdm writes it)"],
        )
    data: dict[str, object] = {
        "path": helper.value,
        "kind": helper.kind,
        "family": helper.family,
        "pinned_profile": helper.pinned,
        "runs": helper.runs,
        "profile": None,
    }
    findings = file_findings(helper, "")
    if helper.exists and helper.regular:
        findings += _what_it_runs(helper, cfg, checked, data)
    return advice.combine(Check("helper", OK, f"{helper.value} ({HELPER_KEY})", [], data), findings)


def file_findings(helper: HelperFile, label: str) -> list[Check]:
    """What keeps Claude from starting ``helper``, or lets others replace it. ``label`` names the
    file when it is not the helper itself (the gatekey a wrapper runs)."""
    path = helper.path
    if not helper.absolute:
        return [
            _fail(
                f"{label}not an absolute path: Claude starts it from no particular directory",
                "give the absolute path (gatekey mdm --helper PATH checks it)",
            )
        ]
    if helper.arguments:
        return [
            _fail(
                f"{label}Claude runs the whole value as one file name, with no arguments: "
                f"{path} exists, but a file named {helper.value!r} does not (the app fails "
                "to start it: ENOENT)",
                f"{WRAP_FIX}, and name the wrapper",
            )
        ]
    if not helper.exists:
        return [
            _fail(
                f"{label}{path} does not exist: Claude cannot start it",
                "install gatekey there, or name the installed one (gatekey mdm writes this "
                "machine's path)",
            )
        ]
    if not helper.regular:
        return [_fail(f"{label}{path} is not a regular file", "name the gatekey executable")]
    found = []
    if not helper.executable:
        mode = _mode(path)
        found.append(_fail(f"{label}{path} is not executable ({mode})", f"chmod 755 {path}"))
    if helper.interpreter:
        found.append(
            _fail(
                f"{label}{path} starts {helper.interpreter}, which is not there (or cannot run)",
                "reinstall gatekey: the environment it was installed in moved or is gone",
            )
        )
    why = replaceable(path)
    if why is not None:
        found.append(
            _fail(
                f"{label}{why}, so someone else could change the program Claude runs for your "
                "gateway credentials",
                "make it, and every directory above it, writable by its owner only (chmod "
                "go-w), in a location only administrators can change",
            )
        )
    if not found and not label:
        found.append(Check("helper", OK, "executable; nobody but you and root can change it"))
    return found


def _what_it_runs(
    helper: HelperFile, cfg: config.Config | None, checked: str | None, data: dict[str, object]
) -> list[Check]:
    """Which profile Claude gets from the helper, and whether doctor is checking that one."""
    if helper.kind == "other":
        return [
            Check(
                "helper",
                WARN,
                "not gatekey, nor a gatekey wrap wrapper: the checks below are about gatekey's "
                "profile, not about what this program prints",
                ["run it the way Claude does: gatekey check"],
            )
        ]
    found: list[Check] = []
    name = "gatekey" if helper.family is None else f"gatekey-{helper.family}"
    if helper.kind == "wrapper":
        if helper.pinned is None or helper.runs is None:
            return [
                Check(
                    "helper",
                    WARN,
                    "a gatekey wrap wrapper, edited: which profile it pins cannot be read",
                    ["write it again: gatekey wrap -p PROFILE -o PATH --force"],
                )
            ]
        profile: str | None = helper.pinned
        what = f'a gatekey wrap wrapper pinning profile "{profile}", running {helper.runs}'
        found.append(Check("helper", OK, what))
        found += file_findings(read_helper(helper.runs), "the gatekey it runs: ")
        if cfg is not None and profile not in cfg.profile_names:
            found.append(
                _fail(
                    f'it pins profile "{profile}", which {cfg.describe_files()} does not define',
                    f"add the profile, or write the wrapper for another: {WRAP_FIX}",
                )
            )
    else:
        profile = None
        if cfg is not None:
            try:
                profile = config.select_profile(cfg, None, helper.family)
            except ConfigError as e:
                found.append(
                    _fail(
                        f"{name} with no arguments cannot choose a profile ({e.message})",
                        f"set default_profile, or {WRAP_FIX}",
                    )
                )
        if profile is not None:
            what = f'{name} itself: a run with no arguments uses profile "{profile}"'
            found.append(Check("helper", OK, what))
    data["profile"] = profile
    shape = helper.shape
    if shape is None and cfg is not None and profile in cfg.profile_names:
        try:
            shape = str(cfg.profile(profile).values.get("output", ""))
        except ConfigError:  # the config check says what is wrong with it
            shape = None
    if shape in ("headers", "git-credential"):
        found.append(
            _fail(
                f"it prints the {shape} output, which is for another of Claude's helpers (MCP, "
                f"OTLP or a marketplace): as {HELPER_KEY} Claude would take all of it as the token",
                "for inference use a wrapper without --format (or --format json|token), or a "
                'profile with output = "token" or "json"',
            )
        )
    if profile is not None and checked is not None and checked != profile:
        found.append(
            Check(
                "helper",
                WARN,
                f'Claude gets profile "{profile}", but this doctor run checks "{checked}"',
                ["run gatekey doctor without -p to check what Claude gets"],
            )
        )
    return found


def _fail(detail: str, fix: str) -> Check:
    return Check("helper", FAIL, detail, [fix])


def _mode(path: str) -> str:
    try:
        return f"mode {stat.S_IMODE(os.stat(path).st_mode):o}"
    except OSError:
        return "mode unknown"
