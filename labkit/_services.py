"""Local web UIs started by ``labkit ui``: optuna-dashboard and ``mlflow ui``, on 127.0.0.1.

Plain process management (no optuna or mlflow import): each UI is its own program, started in
its own process group so that stopping labkit stops everything it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from labkit.errors import LabkitError

__all__ = ["UI", "log_tail", "start_ui", "stop_ui"]


@dataclass
class UI:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def _bin(program: str) -> str:
    here = Path(sys.executable).parent / program  # the one installed beside this Python
    return str(here) if here.exists() else program


def start_ui(name: str, command: list[str], url: str, log: Path, timeout: float = 90.0) -> UI:
    """Start ``command`` and wait until ``url`` answers; LabkitError (with its log) if it does not."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        try:
            process = subprocess.Popen(
                [_bin(command[0]), *command[1:]], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        except FileNotFoundError:
            raise LabkitError(
                f"{name}: program {command[0]!r} not found; install it in this environment"
            ) from None
    ui = UI(name, url, process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LabkitError(f"{name} stopped at once (exit {process.returncode}): {log_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return ui
        except OSError:
            time.sleep(0.5)
    stop_ui(ui)
    raise LabkitError(f"{name} did not answer at {url} within {timeout:.0f} s: {log_tail(log)}")


def stop_ui(ui: UI) -> None:
    if ui.process.poll() is not None:
        return
    os.killpg(ui.process.pid, signal.SIGTERM)
    try:
        ui.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(ui.process.pid, signal.SIGKILL)
        ui.process.wait()


def log_tail(log: Path, lines: int = 3) -> str:
    """The last ``lines`` lines of a process's log, on one line (for error messages)."""
    text = log.read_text(errors="replace").strip().splitlines()
    return " | ".join(text[-lines:]) or "(no output)"
