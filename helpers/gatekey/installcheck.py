"""Refuse to run from an installation that other users can change. Standard library only.

gatekey handles the credentials to an organisation's gateway: whoever can write to the
directories its code runs from (the package, the directories above it up to the environment's
prefix, the directory of the executable the app started) can make it hand those credentials to
them. Such a directory is refused before anything else happens: one that every user can write
to, or one that a group other than its owner's own group can write to (a user-private group,
as a ``umask 002`` gives, is the owner alone). Checked on every run, the cache hit included:
a few ``stat`` calls.
"""

from __future__ import annotations

import os
import sys

EXIT_CODE = 78  # a set-up mistake for the admin, like a configuration error


def problem(argv0: str | None = None) -> str | None:
    """Why this installation must not be trusted, or None."""
    if sys.platform == "win32" or not hasattr(os, "getuid"):
        return None  # NTFS ACLs: the Windows installer sets them (install/windows/install.ps1)
    for directory in _directories(sys.argv[0] if argv0 is None else argv0):
        try:
            st = os.stat(directory)
        except OSError:
            continue
        who = who_can_write(st)
        if who is not None:
            return f"{directory} is writable by {who}"
    return None


def who_can_write(st: os.stat_result) -> str | None:
    """Who besides its owner may change a file or directory with this status, or None: every
    user, or a group other than the owner's own. The one rule for this check and for the paths
    gatekey is told to trust (diagnostics/helper_path.py)."""
    if st.st_mode & 0o002:
        return "every user"
    if st.st_mode & 0o020 and not _owners_own_group(st.st_uid, st.st_gid):
        return f"group {_group_name(st.st_gid)}"
    return None


def message(why: str) -> str:
    return (
        f"gatekey: refusing to run: {why}, so someone else could change the code that handles "
        "your gateway credentials; make it writable by its owner only (chmod go-w on it), or "
        "reinstall gatekey in a location only administrators can change\n"
    )


def _directories(argv0: str) -> list[str]:
    package = os.path.dirname(os.path.abspath(__file__))
    prefix = os.path.abspath(sys.prefix)
    found = [package]
    if package.startswith(prefix + os.sep):
        here = package
        while here != prefix:
            here = os.path.dirname(here)
            found.append(here)
    else:  # on PYTHONPATH, say: the directory that holds the package
        found.append(os.path.dirname(package))
    if os.sep in argv0:
        found.append(os.path.dirname(os.path.abspath(argv0)))
        found.append(os.path.dirname(os.path.realpath(argv0)))
    return list(dict.fromkeys(found))


def _owners_own_group(uid: int, gid: int) -> bool:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_gid == gid
    except KeyError:
        return False


def _group_name(gid: int) -> str:
    import grp

    try:
        return f"{grp.getgrgid(gid).gr_name} (gid {gid})"
    except KeyError:
        return f"gid {gid}"
