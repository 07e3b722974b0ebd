"""A token source that talks on stderr, for tests of masking and stdout purity (via `command`).

Prints JSON {"access_token": $TOKEN, "expires_in": $EXPIRES_IN} on stdout, unless it fails.
Knobs (environment):
  TOKEN         the token to print (required)
  EXPIRES_IN    seconds (default 7200)
  STDERR_TEXT   text written to stderr first; "{token}", "{b64}" and "{prefix}" (the first 12
                characters) are replaced by the token in those forms, a literal "\\n" by a newline
  JUNK          if set, then write this many bytes of binary junk (every byte value) to stderr
  FAIL          exit with this status after the stderr text, printing nothing on stdout
"""

import base64
import json
import os
import sys

token = os.environ["TOKEN"]
text = os.environ.get("STDERR_TEXT", "")
text = text.replace("\\n", "\n").replace("{token}", token).replace("{prefix}", token[:12])
text = text.replace("{b64}", base64.b64encode(token.encode()).decode())
err = sys.stderr.buffer
err.write(text.encode())
junk = int(os.environ.get("JUNK", "0"))
if junk:
    err.write((bytes(range(256)) * (junk // 256 + 1))[:junk])
err.flush()
if os.environ.get("FAIL"):
    sys.exit(int(os.environ["FAIL"]))
print(
    json.dumps({"access_token": token, "expires_in": float(os.environ.get("EXPIRES_IN", "7200"))})
)
