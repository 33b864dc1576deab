"""paramspace: a shared library for reproductions of reports on the parameter space of neural networks."""

__version__ = "0.1.0"
