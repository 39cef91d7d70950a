"""Where labkit keeps what it can make again: simulated events, the run cache of ``compare``."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_cache_dir"]


def default_cache_dir() -> Path:
    """``$LABKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/labkit``, else ``~/.cache/labkit``."""
    if os.environ.get("LABKIT_CACHE_DIR"):
        return Path(os.environ["LABKIT_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "labkit"
