"""Local web UIs started by ``labkit ui``: optuna-dashboard and ``mlflow ui``, on 127.0.0.1.

Plain process management (no optuna or mlflow import): each UI is its own program, started in
its own process group so that stopping labkit stops everything it started. The packages say
what to start (a :class:`Service`: ``labkit.tracking.server.mlflow_ui`` for ``mlflow ui``);
:func:`serve` starts them, prints where they answer and stops them all on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from labkit.errors import LabkitError

__all__ = ["UI", "Service", "log_tail", "serve", "start_ui", "stop_ui"]


@dataclass
class UI:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@dataclass(frozen=True)
class Service:
    """A local web UI to start: its command, the URL that answers once it is up, its log file,
    and the URL shown to the user (default: ``url``)."""

    name: str
    command: list[str] = field(repr=False)
    url: str
    log: Path
    shown: str = ""


def serve(services: Sequence[Service], *, notes: Sequence[str] = (), out: TextIO | None = None) -> None:
    """Start ``services`` in order, print ``notes`` and where each answers, and wait.

    Returns on Ctrl-C or SIGTERM (at once when there is nothing to start); LabkitError when one
    does not start or stops by itself. Every UI started is stopped before this returns or raises.
    """
    stream = out or sys.stdout
    started: list[UI] = []
    previous: Any = None
    try:
        for service in services:
            started.append(start_ui(service.name, service.command, service.url, service.log))
        for note in notes:
            print(note, file=stream)
        for service in services:
            print(f"labkit: {service.name:<16} {service.shown or service.url}", file=stream, flush=True)
        if not started:
            return
        print("labkit: Ctrl-C stops them", file=stream, flush=True)
        previous = signal.signal(signal.SIGTERM, _interrupt)
        while all(ui.process.poll() is None for ui in started):
            time.sleep(0.5)
        gone = [ui for ui in started if ui.process.poll() is not None]
        raise LabkitError(f"{gone[0].name} stopped (see {gone[0].log})")
    except KeyboardInterrupt:
        pass
    finally:
        for ui in started:
            stop_ui(ui)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM stops serve() the way Ctrl-C does


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
