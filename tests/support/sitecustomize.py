"""Test-only: each Python process started with tests/support on PYTHONPATH (the installed
gatekey, and the Python stand-ins it runs as children) appends its own /proc/self/cmdline to
$GATEKEY_TEST_ARGV_LOG, for the suite's check that no secret is ever in argv (hygiene.py)."""

import os

_ARGV_LOG = os.environ.get("GATEKEY_TEST_ARGV_LOG")
if _ARGV_LOG:
    try:
        with open("/proc/self/cmdline", "rb") as _f:
            _cmdline = _f.read()
        _fd = os.open(_ARGV_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(_fd, _cmdline + b"\n")
        finally:
            os.close(_fd)
    except OSError:
        pass
