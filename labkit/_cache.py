"""Where labkit keeps what it can make again: simulated events, the run cache of ``compare``."""

from __future__ import annotations

import os
from pathlib import Path

from labkit.errors import ConfigError

__all__ = ["default_cache_dir"]


def default_cache_dir() -> Path:
    """``$LABKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/labkit``, else ``~/.cache/labkit``."""
    if os.environ.get("LABKIT_CACHE_DIR"):
        return _expand(os.environ["LABKIT_CACHE_DIR"], "LABKIT_CACHE_DIR")
    base = os.environ.get("XDG_CACHE_HOME")
    if base:
        return _expand(base, "XDG_CACHE_HOME") / "labkit"
    try:
        home = Path.home()
    except (RuntimeError, KeyError):  # no $HOME and no password entry
        raise ConfigError(
            "no home folder to keep labkit's cache in ($HOME is not set): set LABKIT_CACHE_DIR to a folder"
        ) from None
    return home / ".cache" / "labkit"


def _expand(value: str, name: str) -> Path:
    try:
        return Path(value).expanduser()
    except (RuntimeError, KeyError):  # ~nosuchuser/...
        raise ConfigError(
            f"${name}: {value!r}: cannot expand {value.split('/', maxsplit=1)[0]!r} (no such user); "
            "give the folder's full path"
        ) from None
