"""Writing generated artifacts: atomically, with the mode asked for whatever the umask."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable

from gatekey.errors import HelperError

# How a fleet command tells the person running it what it did (a line on stderr): the caller
# (the CLI) decides how it is shown, so fleet/ needs no command-line library.
Note = Callable[[str], None]


def write_file(path: str, data: bytes, mode: int) -> str:
    """Replace ``path`` with ``data`` (a temporary file renamed over it); the absolute path."""
    target = os.path.abspath(path)
    folder = os.path.dirname(target)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".gatekey-", suffix=".tmp")
    except OSError as e:
        raise HelperError(f"cannot write in {folder}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise HelperError(f"cannot write {target}: {e.strerror}") from None
    return target
