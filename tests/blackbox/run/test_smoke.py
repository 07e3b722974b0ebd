"""The README's promise in one test: store a key in the real Secret Service, print it."""

import pytest

pytestmark = [pytest.mark.keychain, pytest.mark.blackbox]


def test_store_then_print_through_the_real_secret_service(secret_service):
    gk = secret_service
    stored = gk.run("store", stdin=b"sk-smoke-0123456789\n")
    assert stored.code == 0, stored.err
    assert b"sk-smoke" not in stored.stderr
    printed = gk.run()
    assert printed.code == 0, printed.err
    assert printed.stdout == b"sk-smoke-0123456789\n"
    assert printed.stderr == b""
