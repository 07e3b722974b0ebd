"""Fixtures of the install tests (test_install_bundle.py, test_install_bundle_platforms.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bundle_build import built_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle's .tar.gz (its .sha256 and .cdx.json beside it): see bundle_build.py."""
    return built_bundle(tmp_path_factory)
