"""Moved to :mod:`labkit._rundir` (the torch-free ground floor); kept so old imports still work."""

from __future__ import annotations

from labkit._rundir import RunDir

__all__ = ["RunDir"]
