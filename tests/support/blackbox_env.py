"""Running the installed gatekey as the app does: a private environment (``Env``) and a run's
outcome (``Result``).

The ``gk`` fixture (tests/conftest.py) hands each test an ``Env``; tests import these names from
here (never from conftest, nor from another test module).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from deadlines import HARNESS_S

# The installed executables the black-box tests run: the test venv's console scripts, or, with
# GATEKEY_TEST_BIN_DIR set, another installation's (the bundle: install/build-bundle.sh, which
# scripts/test.sh builds and runs a part of the suite against).
BIN = Path(sys.executable).parent  # the test venv's: python, keyring, and gatekey by default
GATEKEY_BIN = Path(os.environ.get("GATEKEY_TEST_BIN_DIR") or BIN)
FROZEN = bool(os.environ.get("GATEKEY_TEST_BIN_DIR"))  # the executables carry their own Python
SUPPORT = Path(__file__).parent
REPO = SUPPORT.resolve().parent.parent  # the checkout: install/, benchmarks/, tests/
COUNTING_SOURCE = SUPPORT / "counting_source.py"
CONTEXTS = ("interactive", "mid-session-refresh", "scheduled-task", "setup-test", "background")
SILENT_CONTEXTS = CONTEXTS[1:]


def exe(name: str = "gatekey") -> str:
    """An installed executable: gatekey's from GATEKEY_BIN, any other (keyring, ...) from BIN."""
    path = (GATEKEY_BIN if name.startswith("gatekey") else BIN) / name
    assert path.exists(), f"{path} is not installed; run the README's test command"
    return str(path)


@dataclass
class Result:
    argv: list[str]
    code: int
    stdout: bytes
    stderr: bytes
    elapsed: float

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    def assert_clean_failure(self, code: int) -> None:
        """A failure per the contract: the code, empty stdout, one stderr line, no traceback."""
        assert self.code == code, f"exit {self.code}, expected {code}; stderr: {self.err}"
        assert self.stdout == b"", f"stdout must be empty on failure, got {self.stdout!r}"
        assert "Traceback" not in self.err, self.err
        assert self.err.startswith("gatekey: "), self.err
        assert self.err.endswith("\n")


@dataclass
class Env:
    """A private environment for gatekey runs: HOME, XDG dirs, config and cache in tmp_path."""

    root: Path
    vars: dict[str, str] = field(default_factory=dict)
    # What successful runs printed: the run log must never contain any of it (see runlog_clean).
    printed: list[bytes] = field(default_factory=list, repr=False)  # credentials

    @property
    def run_log(self) -> Path:
        """Every test's config logs its runs here (unless it sets log_file itself)."""
        return self.root / "gatekey-runs.jsonl"

    @property
    def cache_dir(self) -> Path:
        return Path(self.vars["GATEKEY_CACHE_DIR"])

    @property
    def config_path(self) -> Path:
        return self.root / "config.toml"

    def write_config(self, text: str, *, run_log: bool = True) -> Path:
        if run_log and "log_file" not in text:
            text = f'log_file = "{self.run_log}"\n' + text
        self.config_path.write_text(text)
        self.vars["GATEKEY_CONFIG"] = str(self.config_path)
        return self.config_path

    def counting_profile(self, name: str = "cmd", extra: str = "", *, secure: bool = False) -> str:
        """TOML for a `command` profile running the counting source (see support/).

        Its tokens go to the file cache (``allow_insecure_cache``), where the cache-core tests
        inspect and age them; ``secure=True`` keeps the vault default (kernel keyring +
        keychain, tests/blackbox/cache/test_secure_cache.py)."""
        return (
            f'[profiles.{name}]\nsource = "command"\n'
            f'command = ["{sys.executable}", "{COUNTING_SOURCE}"]\n'
            'parse = "json"\ntoken_path = "access_token"\nexpires_in_path = "expires_in"\n'
            + ("" if secure else "allow_insecure_cache = true\n")
            + f"{extra}\n"
        )

    def entry_path(self) -> Path:
        """The (only) cached token file."""
        files = sorted((self.cache_dir / "tokens").glob("*.json"))
        assert len(files) == 1, f"expected one cache entry, found {files}"
        return files[0]

    def edit_entry(self, **fields: float) -> None:
        """Rewrite fields of the (only) cached token, atomically, as time passing would."""
        path = self.entry_path()
        data = json.loads(path.read_text())
        data.update(fields)
        tmp = path.with_name(path.name + ".edit")
        tmp.write_text(json.dumps(data))
        tmp.chmod(0o600)
        os.replace(tmp, path)

    def forget_failures(self) -> None:
        """As if the backoff had passed: drop gatekey's remembered source failures."""
        for path in (self.cache_dir / "failures").glob("*.json"):
            path.unlink()

    def msal_path(self) -> Path:
        """MSAL's state file of the (only) signed-in profile with token_cache = "file"."""
        files = sorted((self.cache_dir / "msal").glob("*.json"))
        assert len(files) == 1, f"expected one MSAL state file, found {files}"
        return files[0]

    def run_together(
        self, contexts: list[str | None], *args: str, timeout: float = HARNESS_S, **extra: str
    ) -> list[tuple[int, bytes, bytes, float]]:
        """Start one gatekey per entry of ``contexts`` at once, then wait for all of them:
        (exit code, stdout, stderr, seconds from the first start to this one's end)."""
        procs = []
        t0 = time.monotonic()
        for ctx in contexts:
            env = dict(self.vars, **extra)
            if ctx is not None:
                env["CLAUDE_HELPER_CONTEXT"] = ctx
            procs.append(
                subprocess.Popen(
                    [exe(), *args],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=env,
                    cwd=self.root,
                )
            )
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            results.append((proc.returncode, out, err, time.monotonic() - t0))
        return results

    def count(self) -> int:
        path = Path(self.vars["COUNT_FILE"])
        return len(path.read_text().splitlines()) if path.exists() else 0

    def run(
        self,
        *args: str,
        exe_name: str = "gatekey",
        context: str | None = None,
        stdin: bytes | None = None,
        timeout: float = HARNESS_S,
        **extra: str,
    ) -> Result:
        env = dict(self.vars, **extra)
        if context is not None:
            env["CLAUDE_HELPER_CONTEXT"] = context
        argv = [exe(exe_name), *args]
        t0 = time.monotonic()
        proc = subprocess.run(
            argv,
            input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            capture_output=True,
            env=env,
            timeout=timeout,
            cwd=self.root,
        )
        commands = [a for a in args if not a.startswith("-")]
        if proc.returncode == 0 and (not commands or commands[0] == "get"):
            self.printed.append(proc.stdout)  # a credential (helper runs and `get` only)
        return Result(argv, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0)
