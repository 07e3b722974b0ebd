"""`gatekey wrap`: a no-argument executable pinned to one profile (and shape), for any helper
Claude runs: inferenceCredentialHelper, an MCP server's headersHelper, otlpHeadersHelper, a plugin
marketplace's credentialHelper.

The app runs each helper with no arguments, so a machine that needs a second gateway profile, or
a second shape of the same credential (``--format headers`` for an MCP server), gets a wrapper
per entry: it sets ``GATEKEY_PROFILE`` (and, with ``--format``, ``GATEKEY_OUTPUT``, which wins
over the profile's ``output``) and execs gatekey by absolute path. The no-argument cache hit
reads both, so a wrapper's hit is as fast as the default one.

- POSIX: ``#!/bin/sh``, every value single-quoted (a ``'`` inside becomes ``'\\''``), mode 755.
- Windows (``--shell cmd``, the default there or for a ``.cmd`` / ``.bat`` name): ``@echo off``,
  ``set "GATEKEY_PROFILE=..."``, the quoted gatekey.exe path; ``%`` is doubled, and a ``"`` or a
  control character is refused (cmd has no way to quote them). CRLF line ends.
Arguments given to the wrapper are passed on (the app gives none), so ``wrapper login`` or
``wrapper get --format header`` work for the pinned profile.

Claude runs the wrapper with the user's sign-in, so it is written only where nobody but you and
root could replace it (the directory and every one above it), and it runs a gatekey that nobody
else could replace either: diagnostics/helper_path.py's rule, gatekey's own installation check.
``--force`` writes it anyway, with a warning. Doctor reads the pinned profile back from these lines
(helper_path.read_helper): keep the two in step.
"""

from __future__ import annotations

import os
import shlex
import sys

from gatekey import __version__, config
from gatekey.diagnostics.helper_path import WRAP_MARKER, refuse_replaceable
from gatekey.errors import HelperError, UsageProblem
from gatekey.fleet.files import Note, write_file
from gatekey.fleet.managed import check_helper_path
from gatekey.output import SHAPE_ENV, SHAPES


def sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _purpose(shape: str | None) -> tuple[str, str]:
    """The wrapper's two comment lines after the marker: what it is pinned to, and for what."""
    if shape is None:
        return "gatekey pinned to one profile, for", "Claude's inferenceCredentialHelper"
    return f"gatekey pinned to one profile and the {shape} output, for", SURFACES[shape]


# Which of Claude's helpers print each shape (contract.md, "Other helpers").
SURFACES = {
    "token": "a helper that reads a bare token",
    "json": "Claude's inferenceCredentialHelper",
    "headers": "an MCP server's headersHelper or otlpHeadersHelper",
    "git-credential": "a plugin marketplace's credentialHelper",
}


def posix_script(profile: str, gatekey: str, shape: str | None = None) -> bytes:
    pinned, purpose = _purpose(shape)
    lines = [
        "#!/bin/sh",
        f"# {WRAP_MARKER} ({__version__}): {pinned}",
        f"# {purpose} (run with no arguments). Do not edit; regenerate.",
        f"GATEKEY_PROFILE={sh_quote(profile)}",
        "export GATEKEY_PROFILE",
    ]
    if shape is not None:
        lines += [f"{SHAPE_ENV}={sh_quote(shape)}", f"export {SHAPE_ENV}"]
    if shape == GIT_CREDENTIAL:
        lines += _GIT_PROTOCOL_SH
    lines.append(f'exec {sh_quote(gatekey)} "$@"')
    return ("\n".join(lines) + "\n").encode("utf-8")


GIT_CREDENTIAL = "git-credential"
# A git-credential wrapper is also a git credential helper (credential.helper = its path): git
# runs it with one argument, `get`, `store` or `erase`, and key=value lines on a pipe. `get` is the
# no-argument run; git's `store` and `erase` (after a refused credential) are not gatekey's `store`
# and `erase`, which would replace or delete the profile's secret: they are read and ignored. A
# person at a terminal (stdin a TTY) gets gatekey's own commands, as from any wrapper.
_GIT_PROTOCOL_SH = [
    'if [ "$#" -eq 1 ] && [ ! -t 0 ]; then',
    '  case "$1" in',
    "    get) set -- ;;",
    "    store|erase) cat >/dev/null; exit 0 ;;",
    "  esac",
    "fi",
]


def _cmd_text(text: str, what: str) -> str:
    if '"' in text or any(ord(c) < 0x20 for c in text):
        raise UsageProblem(what, "a .cmd wrapper cannot hold a double quote or control character")
    return text.replace("%", "%%")


def cmd_script(profile: str, gatekey: str, shape: str | None = None) -> bytes:
    pinned, purpose = _purpose(shape)
    lines = [
        "@echo off",
        f"rem {WRAP_MARKER} ({__version__}): {pinned}",
        f"rem {purpose} (run with no arguments). Do not edit; regenerate.",
        "setlocal",
        f'set "GATEKEY_PROFILE={_cmd_text(profile, "--profile")}"',
    ]
    if shape is not None:
        lines.append(f'set "{SHAPE_ENV}={shape}"')  # a shape name needs no quoting
    run = f'"{_cmd_text(gatekey, "--gatekey")}"'
    if shape == GIT_CREDENTIAL:  # git's helper protocol, as in posix_script
        lines += [
            'if not "%~2"=="" goto run',
            'if /i "%~1"=="store" exit /b 0',
            'if /i "%~1"=="erase" exit /b 0',
            'if /i not "%~1"=="get" goto run',
            run,
            "exit /b %ERRORLEVEL%",
            ":run",
        ]
    lines += [f"{run} %*", "exit /b %ERRORLEVEL%"]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def write_wrapper(
    family: str | None,
    profile: str,
    out: str,
    *,
    gatekey: str | None,
    shell: str | None,
    force: bool,
    note: Note,
    shape: str | None = None,
) -> None:
    """Write the wrapper pinned to ``profile`` (and ``shape``, one of output.SHAPES; None: the
    profile's output) at ``out``: ``shell`` is sh or cmd (default: cmd for a .cmd / .bat name
    or on Windows), ``gatekey`` the executable it runs (default: this one). Only with
    ``force``: an existing file with other content is replaced, and a place others could change
    (``out``'s directory, ``gatekey``) is used, after a warning."""
    if shape is not None and shape not in SHAPES:
        raise UsageProblem("--format", f"expected one of {', '.join(SHAPES)}")
    cfg = config.load()
    name = config.select_profile(cfg, profile, family)
    cfg.profile(name)  # exists and is valid here (exit 78 otherwise)
    shell = shell or (
        "cmd" if out.lower().endswith((".cmd", ".bat")) or sys.platform == "win32" else "sh"
    )
    if gatekey is None:
        from gatekey.diagnostics.check import default_helper

        gatekey = default_helper(family)
    try:
        gatekey = check_helper_path(gatekey, windows=shell == "cmd", exists=os.path.isfile(gatekey))
    except UsageProblem as e:
        raise UsageProblem("--gatekey", str(e).split(": ", 1)[1]) from None
    script = cmd_script if shell == "cmd" else posix_script
    data = script(name, gatekey, shape)
    target = os.path.abspath(out)
    refuse_replaceable(target, "--output", force=force, note=note, new_file=True)
    if shell == "sh":  # a Windows path names nothing on this machine
        refuse_replaceable(gatekey, "--gatekey", force=force, note=note)
    if os.path.lexists(target):
        if not os.path.isfile(target) or os.path.islink(target):
            raise HelperError(f"{target} exists and is not a regular file; choose another path")
        with open(target, "rb") as f:
            same = f.read() == data
        if same:
            os.chmod(target, 0o755)  # noqa: S103 - an executable everyone may run, as intended
            note(f"{target} is already this wrapper")
            return
        if not force:
            raise HelperError(f"{target} exists with other content; use --force to replace it")
    write_file(target, data, 0o755)
    if shape is None:
        note(
            f'wrote {target} (profile "{name}"); use it as the helper: gatekey mdm '
            f"--helper {shlex.quote(target)} ..."
        )
    else:
        note(f'wrote {target} (profile "{name}", output {shape}); use it as {SURFACES[shape]}')
