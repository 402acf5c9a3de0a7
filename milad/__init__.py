"""MILAD: moment invariants local atomic descriptors."""

__version__ = "0.1.0"
