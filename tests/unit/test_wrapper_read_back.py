"""Doctor reads back the profile a `gatekey wrap` wrapper pins, and the gatekey it runs, from the
lines fleet/wrap.py writes (diagnostics/helper_path.py), for sh and cmd wrappers and for names
that need quoting; the black-box doctor tests run the sh wrapper end to end.
"""

from __future__ import annotations

from pathlib import Path

import pytest

NAMES = ["plain", "it's", "a b", "100%", "x'\\''y", "$HOME `id`"]


@pytest.mark.parametrize("profile", NAMES)
def test_sh_wrapper_read_back(tmp_path: Path, profile: str) -> None:
    from gatekey.diagnostics.helper_path import read_helper
    from gatekey.fleet.wrap import posix_script

    gatekey = "/opt/it's gatekey/bin/gatekey-idp"
    path = tmp_path / "wrapper"
    path.write_bytes(posix_script(profile, gatekey))
    path.chmod(0o755)
    found = read_helper(str(path))
    assert (found.kind, found.pinned, found.runs, found.family) == (
        "wrapper",
        profile,
        gatekey,
        "idp",
    )


@pytest.mark.parametrize("profile", NAMES)
def test_cmd_wrapper_read_back(tmp_path: Path, profile: str) -> None:
    from gatekey.diagnostics.helper_path import read_helper
    from gatekey.fleet.wrap import cmd_script

    gatekey = r"C:\Program Files\gatekey 100%\Scripts\gatekey.exe"
    path = tmp_path / "gatekey-x.cmd"
    path.write_bytes(cmd_script(profile, gatekey))
    found = read_helper(str(path))
    assert (found.kind, found.pinned, found.runs, found.family) == (
        "wrapper",
        profile,
        gatekey,
        None,
    )


def test_an_edited_wrapper_reads_as_unknown(tmp_path: Path) -> None:
    from gatekey.diagnostics.helper_path import read_helper
    from gatekey.fleet.wrap import posix_script

    path = tmp_path / "wrapper"
    text = posix_script("main", "/opt/gatekey/bin/gatekey").decode()
    path.write_text(text.replace("GATEKEY_PROFILE='main'", "GATEKEY_PROFILE='main"))
    path.chmod(0o755)
    found = read_helper(str(path))
    assert (found.kind, found.pinned) == ("wrapper", None)
