"""Fixtures for the model tests: where the shared datasets are, and the lifetimes oracle.

lifetimes 0.11.3 (2020) imports and runs unchanged on numpy 2.4 / scipy 1.17 / pandas 3.1, so no
shim is needed. It only sets the pandas option ``mode.chained_assignment`` at import, which pandas
3 deprecates with a Pandas4Warning; that one warning is silenced here, nothing else is patched.
lifetimes also calls ``warnings.simplefilter("ignore", FutureWarning)`` at import and in every
likelihood evaluation; pytest restores the warning filters after each test, so that does not leak.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from types import ModuleType

import pytest


def datasets_dir() -> Path:
    """``$CRMLENS_DATASETS`` if set, else ``../shared/datasets`` next to the repository root."""
    env = os.environ.get("CRMLENS_DATASETS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def datasets() -> Path:
    """The shared datasets folder; skips the test when it is absent."""
    path = datasets_dir()
    if not path.is_dir():
        pytest.skip(f"shared datasets not found at {path} (set CRMLENS_DATASETS to override)")
    return path


@pytest.fixture(scope="session")
def lifetimes() -> ModuleType:
    """The lifetimes package (test-only oracle); skips the test when it is not installed."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*mode.chained_assignment.*")
        module = pytest.importorskip(
            "lifetimes",
            reason="lifetimes (test-only oracle) is not installed: pip install lifetimes",
        )
        import lifetimes.utils  # noqa: F401  (imported here so its import-time warning is silenced)
    return module
