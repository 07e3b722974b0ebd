"""The refresh worker process (see worker.py): fetch and save as its job says, answer, exit.

Started by worker.refresh as ``python -I`` with the job on stdin; it imports what the run did and
calls refresh.fetch_in_worker, so it sits above refresh.py, which only starts it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
from typing import Any

from gatekey import logs, refresh, sources, worker
from gatekey.config import Profile
from gatekey.context import RunContext
from gatekey.errors import HelperError

log = logging.getLogger("gatekey.worker")


def frozen_main() -> None:
    """The worker of a frozen gatekey (install/bundle/entry.py): the job on stdin, as the
    bootstrap of worker.py reads it, without the path (the bundle imports from itself only)."""
    os.environ.pop(worker.FROZEN_WORKER_ENV, None)  # not for the source's own children
    main(json.load(sys.stdin))


def main(job: dict[str, Any]) -> None:
    """The worker process: fetch and save as the job says, answer, exit (never returns)."""
    worker.in_worker = True
    name, kind, values, origins = job["profile"]
    run_name, interactive, timeout, force_refresh, started = job["run"]
    run = RunContext(
        run_name,
        interactive=interactive,
        timeout=timeout,
        force_refresh=force_refresh,
        started=started,  # time.monotonic() is system-wide: the same deadline as the run's
    )
    run.fetches = job["fetches"]
    # Never linger: the kernel ends the worker at the run's deadline plus the grace.
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.setitimer(signal.ITIMER_REAL, max(run.remaining(), 0.0) + worker.WORKER_GRACE)
    logs.setup()
    logging.getLogger("gatekey").setLevel(job["log_level"])
    logging.raiseExceptions = False  # the run is gone: its stderr pipe may be too
    for secret in job["secrets"]:
        logs.register_secret(secret)
    result: dict[str, Any]
    try:
        spec = sources.find(kind)
        if spec is None:
            raise HelperError(f"unknown source kind {kind!r}", profile=name)
        profile = Profile(name, spec, values, origins)
        token = refresh.fetch_in_worker(profile, run, job["cache_root"], job["key"])
        result = {"token": token.to_json()}
    except HelperError as e:
        attrs = {k: v for k, v in vars(e).items() if isinstance(v, (str, int, float, type(None)))}
        result = {"error": {"class": f"{type(e).__module__}.{type(e).__name__}", "attrs": attrs}}
    except KeyboardInterrupt:
        result = {"interrupted": True}
    except BaseException as e:  # reported to the run, which says "internal error"
        log.debug("internal error in the refresh worker", exc_info=True)
        result = {"crash": type(e).__name__}
    result["fetches"] = run.fetches
    with contextlib.suppress(OSError):
        sys.stderr.flush()
    answer = json.dumps(result).encode()
    with contextlib.suppress(OSError):  # the run may be gone; what matters is saved already
        while answer:
            answer = answer[os.write(job["result_fd"], answer) :]
    os._exit(0)
