"""``labkit sim``: events from one of labkit's seeded simulators, written to an HDF5 file.

Plain numpy (h5py to write); no torch. The CLI checks its arguments and prints; this module
checks the size, simulates, and writes the file atomically.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.errors import LabkitError

__all__ = ["Simulated", "write_simulation"]


@dataclass(frozen=True)
class Simulated:
    """What ``labkit sim`` wrote."""

    path: Path
    simulator: str
    events: int
    seed: int
    seconds: float  #: simulating the events (not writing them)
    shapes: dict[str, tuple[int, ...]]  #: each array in the file and its shape

    @property
    def size_mb(self) -> float:
        return self.path.stat().st_size / 1e6


def write_simulation(
    simulator: str, *, events: int, seed: int, output: Path, options: Mapping[str, Any]
) -> Simulated:
    """Simulate ``events`` events with ``simulator`` and its ``options`` and write them to
    ``output`` (through a temporary file beside it: a failed write leaves no partial file).
    The options and the size are checked first: a trillion events fails here, not in the
    allocator (the error names ``-n/--events``)."""
    from labkit import sim

    kwargs = dict(options)
    sim.SIMULATORS[simulator].check_size(events, kwargs, field="-n/--events")
    start = time.perf_counter()
    sample = sim.simulate(simulator, events, seed=seed, **kwargs)
    generated = time.perf_counter() - start
    tmp = output.with_name(f".{output.name}.tmp{os.getpid()}")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        sim.write_h5(sample, tmp)
        os.replace(tmp, output)
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise LabkitError(f"-o {output}: cannot write it ({why}); choose another path") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    shapes = {k: tuple(v.shape) for k, v in sim.as_arrays(sample).items()}
    return Simulated(output, simulator, events, seed, generated, shapes)
