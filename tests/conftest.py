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
