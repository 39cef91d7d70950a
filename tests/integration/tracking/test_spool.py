"""The durable spool survives a SIGKILL of the process writing it (a subprocess)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from labkit.tracking import Spool


def test_spool_keeps_every_point_through_sigkill(tmp_path: Path) -> None:
    code = f"""
import os, signal
from labkit.tracking import Spool
spool = Spool.create({str(tmp_path / "spool.db")!r}, uri="x", experiment="unit", run_name="r")
for step in range(3000):
    spool.log_metrics({{"loss": 1.0 / (step + 1)}}, step)
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    spool = Spool(tmp_path / "spool.db")
    assert spool.last_steps() == {"loss": 2999}
    assert spool.pending().counts == {"metric": 3000}
