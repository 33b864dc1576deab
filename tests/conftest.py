"""Shared test configuration.

The unit tests use tiny tensors, for which torch's intra-op thread pool only adds overhead (and
stalls badly when the cores are shared with another job), so the suite runs single-threaded.
"""

import torch

torch.set_num_threads(1)


def pytest_configure(config):
    # torch's own forward-AD decompositions call the deprecated torch.jit.script on first use;
    # paramspace.curvature silences it at import, but pytest resets warning filters per test.
    config.addinivalue_line("filterwarnings", r"ignore:`torch\.jit\.script` is deprecated:FutureWarning")


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _serial_uncached_engine(monkeypatch):
    """Report plans run in this process and uncached inside the tests, so a test's monkeypatched loader
    or method is what the runs see and no result leaks between tests through the per-run cache.
    tests/test_engine.py sets (or removes) these variables itself to test the Ray engine and the cache;
    `make book` runs the real engine."""
    monkeypatch.setenv("PARAMSPACE_ENGINE", "serial")
    monkeypatch.setenv("PARAMSPACE_RUN_CACHE", "off")


class Overlap:
    """``with overlap:`` around a fake's body counts how many calls are inside at once (from threads);
    ``peak`` is the most there ever were."""

    def __init__(self):
        import threading

        self.active = self.peak = 0
        self._lock = threading.Lock()

    def __enter__(self):
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)

    def __exit__(self, *exc):
        with self._lock:
            self.active -= 1


@pytest.fixture
def overlap():
    """An :class:`Overlap` for a fake that threads call at once."""
    return Overlap()
