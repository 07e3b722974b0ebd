"""Gateway test peers: the Anthropic Messages upstream every gateway forwards to, a client that
sends requests the way Claude Desktop does with a helper's output, and the gateway recipes (the
profiles the README shows, loaded by the tests that prove them)."""
