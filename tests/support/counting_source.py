"""A counting token source for tests, used through gatekey's `command` source.

Each run appends one line to $COUNT_FILE (under an exclusive lock, so concurrent runs all count),
then prints JSON {"access_token": ..., "expires_in": ...}. Knobs (environment):
  TOKEN        the token to print (default: "tok-<n>" where n is this run's number)
  EXPIRES_IN   seconds (default 7200)
  SLEEP        seconds to sleep before answering (to widen races)
  FAIL         exit with this status instead of answering (stderr says so)
  FAIL_AFTER   answer for the first N runs, then fail with status 1
"""

import fcntl
import json
import os
import sys
import time

count_file = os.environ["COUNT_FILE"]
with open(count_file, "a+") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    f.seek(0)
    n = len(f.read().splitlines()) + 1
    f.write(f"{os.getpid()}\n")
    f.flush()
time.sleep(float(os.environ.get("SLEEP", "0")))
if os.environ.get("FAIL"):
    sys.stderr.write("counting source: failing on purpose\n")
    sys.exit(int(os.environ["FAIL"]))
if os.environ.get("FAIL_AFTER") and n > int(os.environ["FAIL_AFTER"]):
    sys.stderr.write("counting source: source is down\n")
    sys.exit(1)
token = os.environ.get("TOKEN", f"tok-{n}")
print(
    json.dumps({"access_token": token, "expires_in": float(os.environ.get("EXPIRES_IN", "7200"))})
)
