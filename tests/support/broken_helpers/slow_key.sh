#!/bin/sh
# An apiKeyHelper that takes longer than the 10 s Claude Code warns at (GATEKEY_TEST_SLEEP
# seconds: the test scales the limits down and sleeps accordingly).
sleep "${GATEKEY_TEST_SLEEP:-11}"
echo tok-slowkey-3b2a1f0e9d8c7b6a
