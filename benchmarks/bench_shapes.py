#!/usr/bin/env python3
"""A wrapped profile's cache hit in the headers shape next to the default hit (issue 17).

  python -c pass        the venv's interpreter doing nothing (the floor of a Python helper)
  default hit           `gatekey`, no arguments, the default profile's token (output "token")
  wrapped token hit     a `gatekey wrap -p cmd` wrapper (/bin/sh, then exec gatekey): the same
                        profile and shape, so this isolates what the wrapper itself costs
  wrapped headers hit   a `gatekey wrap -p cmd --format headers` wrapper: the MCP headersHelper's
                        run, a JSON header map with the credential and a claim-filled header

and the targets: wrapped headers hit <= 1.2x the default hit (the wrapper's shell and the
shape together), wrapped headers hit <= 1.1x the wrapped token hit (the shape alone). All four
serve one profile from one cache: a `command` source whose JWT is valid for a day, and the
benchmark fails unless the source ran exactly once. Rounds are interleaved in a new random
order, as bench.py does.

Usage: .venv/bin/python benchmarks/bench_shapes.py [--runs N] [--warmup N] [--json] [--check]
Writes shapes-latest.json and shapes-latest.md into benchmarks/results (or --out).
"""

from __future__ import annotations

import base64
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench import (  # noqa: E402
    VENV_BIN,
    base_env,
    fetches,
    machine,
    markdown,
    measure,
    parse_args,
    ratios,
    report,
    run_checked,
    summarize,
    use_venv_interpreter,
)

COMMANDS = ("python", "default_hit", "wrapped_token", "wrapped_headers")
LABELS = {
    "python": "python -c pass",
    "default_hit": "gatekey (default hit)",
    "wrapped_token": "wrapper, token (hit)",
    "wrapped_headers": "wrapper --format headers (hit)",
}
RATIOS = {
    "wrapped_headers_vs_default_hit": ("wrapped_headers", "default_hit", 1.2),
    "wrapped_headers_vs_wrapped_token": ("wrapped_headers", "wrapped_token", 1.1),
    "default_hit_vs_python": ("default_hit", "python", None),
}


def _part(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


# A JWT (unsigned: gatekey decodes claims, it never verifies them) for the claim header.
TOKEN = f"{_part({'alg': 'RS256'})}.{_part({'oid': '0a1b', 'sub': 'bench'})}.c2ln"
SOURCE_SCRIPT = """\
import json
with open(%r, "a") as f:
    f.write("fetch\\n")
print(json.dumps({"access_token": %r, "expires_in": 86400}))
"""
EXPECTED = {
    "python": b"",
    "default_hit": TOKEN.encode() + b"\n",
    "wrapped_token": TOKEN.encode() + b"\n",
    "wrapped_headers": json.dumps(
        {"Authorization": f"Bearer {TOKEN}", "X-User": "0a1b", "X-Org-Route": "prod"}
    ).encode()
    + b"\n",
}


def write_config(root: Path) -> None:
    script = root / "print_token.py"
    script.write_text(SOURCE_SCRIPT % (str(root / "fetches.txt"), TOKEN))
    (root / "config.toml").write_text(
        'default_profile = "cmd"\n\n'
        "[profiles.cmd]\n"
        'source = "command"\n'
        f"command = [{json.dumps(str(VENV_BIN / 'python'))}, {json.dumps(str(script))}]\n"
        'parse = "json"\ntoken_path = "access_token"\nexpires_in_path = "expires_in"\n'
        'headers = { X-User = "{claims.oid}", X-Org-Route = "prod" }\n'
    )


def main(argv: list[str] | None = None) -> int:
    use_venv_interpreter(__file__)
    args = parse_args(argv, __doc__ or "", runs=40, warmup=3, results="shapes-latest")
    with tempfile.TemporaryDirectory(prefix="gatekey-bench-") as tmp:
        root = Path(tmp)
        env = base_env(root)
        write_config(root)
        gatekey = str(VENV_BIN / "gatekey")
        for name, shape in (("wrapped-token", None), ("wrapped-headers", "headers")):
            extra = [] if shape is None else ["--format", shape]
            run_checked([gatekey, "wrap", "-p", "cmd", "-o", str(root / name), *extra], env)
        commands = {
            "python": [str(VENV_BIN / "python"), "-c", "pass"],
            "default_hit": [gatekey],
            "wrapped_token": [str(root / "wrapped-token")],
            "wrapped_headers": [str(root / "wrapped-headers")],
        }
        for key, argv_ in commands.items():  # the first gatekey run fetches; the rest hit
            out = run_checked(argv_, env)
            if out != EXPECTED[key]:
                raise SystemExit(f"bench: {LABELS[key]} printed {out[:60]!r}, not the expected")
        times = measure(commands, env, args.runs, args.warmup)
        if fetches(root) != 1:
            raise SystemExit(f"bench: the source ran {fetches(root)} times; hits expected")
    summary = summarize(times, COMMANDS)
    result = {
        "machine": machine(),
        "runs": args.runs,
        "warmup": args.warmup,
        "commands": {key: LABELS[key] for key in COMMANDS},
        "medians": summary,
        "ratios": ratios(summary, RATIOS),
    }
    title = (
        f"Shapes benchmark ({result['machine']['date']}, {result['machine']['cpus']} CPUs, "
        f"{args.runs} runs after {args.warmup} warm-ups, interleaved):"
    )
    table = markdown(result, title, labels=LABELS, table=RATIOS, untargeted="-")
    return report(args, result, "shapes-latest", table)


if __name__ == "__main__":
    sys.exit(main())
