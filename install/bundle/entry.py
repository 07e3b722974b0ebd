"""The bundle's one entry point (install/build-bundle.sh): gatekey, gatekey-keychain, gatekey-idp
and gatekey-vault are this one executable, told apart by the name it was started as (argv[0], or
the name of a link to it). Imports only what the console scripts' entry imports (the cache hit:
standard library + tests/support/hit_modules.py), so the bundle's hit costs what the venv's does.
"""

import os
import sys

_FAMILIES = {"gatekey-keychain": "keychain", "gatekey-idp": "idp", "gatekey-vault": "vault"}


def _family() -> "str | None":
    name = os.path.basename(sys.argv[0] if sys.argv and sys.argv[0] else sys.executable)
    if name.lower().endswith(".exe"):
        name = name[:-4]
    return _FAMILIES.get(name.lower())


if os.environ.get("GATEKEY_BUNDLE_WORKER") == "1":
    # The refresh worker (helpers/gatekey/worker.py starts this executable, not a python -c,
    # when frozen): the job comes on stdin, as with the console scripts' interpreter.
    from gatekey.worker_main import frozen_main

    frozen_main()
else:
    from gatekey.fastpath import main

    main(_family())
