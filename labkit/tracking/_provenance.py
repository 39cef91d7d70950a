"""Where a run came from: git state, versions, host, user, command. No mlflow here."""

from __future__ import annotations

import getpass
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

from labkit.config import redact_uri

__all__ = ["GitState", "git_state", "redact_command", "redact_uri", "software_versions"]


@dataclass(frozen=True)
class GitState:
    root: Path
    commit: str
    branch: str | None
    dirty: bool
    patch: str  #: ``git diff HEAD`` plus the list of untracked files, when dirty
    remote: str | None


def _git(cwd: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def git_state(*candidates: Path) -> GitState | None:
    """The git checkout holding the first candidate that lies in one (``None`` outside git)."""
    for candidate in candidates:
        start = candidate if candidate.is_dir() else candidate.parent
        root = _git(start, "rev-parse", "--show-toplevel")
        commit = _git(start, "rev-parse", "HEAD")
        if not root or not commit:
            continue
        top = Path(root.strip())
        status = _git(top, "status", "--porcelain", "--untracked-files=normal") or ""
        tracked = [line for line in status.splitlines() if not line.startswith("??")]
        untracked = [line[3:] for line in status.splitlines() if line.startswith("??")]
        patch = ""
        if tracked:
            patch = _git(top, "diff", "HEAD", "--binary") or ""
            if untracked:
                patch += "\n# untracked files (not in this patch):\n" + "".join(
                    f"#   {u}\n" for u in untracked
                )
        branch = (_git(top, "rev-parse", "--abbrev-ref", "HEAD") or "").strip()
        remote = (_git(top, "config", "--get", "remote.origin.url") or "").strip()
        return GitState(
            root=top,
            commit=commit.strip(),
            branch=branch if branch and branch != "HEAD" else None,
            dirty=bool(tracked),
            patch=patch,
            remote=redact_uri(remote) if remote else None,
        )
    return None


def software_versions() -> dict[str, str]:
    """Versions of labkit, Python and the libraries that decide a run's numbers."""
    from importlib.metadata import PackageNotFoundError, version

    import labkit

    found = {"labkit": labkit.__version__, "python": platform.python_version()}
    for dist in ("torch", "lightning", "torchmetrics", "numpy", "mlflow"):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return found


def user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for this uid (containers)
        return "unknown"


def redact_command(command: str) -> str:
    """A command line with the password of every URI in it (``key=scheme://u:pw@host``) hidden."""
    import shlex

    try:
        words = shlex.split(command)
    except ValueError:
        return command
    out = []
    for word in words:
        key, sep, value = word.partition("=") if "=" in word.split("://")[0] else ("", "", word)
        out.append(f"{key}{sep}{redact_uri(value)}")
    return shlex.join(out)
