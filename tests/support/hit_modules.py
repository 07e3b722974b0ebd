"""The gatekey modules a no-argument cache hit imports: exactly these, in every context and
whatever the profile's headers (a claim header is decoded by token.py, already among them)."""

HIT_MODULES = {
    "gatekey",
    "gatekey.cache",
    "gatekey.context",
    "gatekey.errors",
    "gatekey.fastpath",
    "gatekey.installcheck",
    "gatekey.output",
    "gatekey.paths",
    "gatekey.regular",
    "gatekey.token",
}
