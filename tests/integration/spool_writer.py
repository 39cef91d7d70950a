"""A process that logs metric points through labkit's RunClient, as a training loop does: one
``log_values`` call per step. Used by the fault tests and benchmarks/logging_throughput.py.

    python spool_writer.py RUN_DIR URI --points N [--interval S] [--experiment E]

Prints ``logged K`` after every 100 points (so a test can kill it at a known point) and, at the
end, one JSON line with the run id, the seconds spent logging and what is left in the spool.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("uri")
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=0.0, help="seconds between points")
    parser.add_argument("--experiment", default="spool-faults")
    parser.add_argument("--name", default="writer")
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    args = parser.parse_args()

    from labkit.tracking import RunClient

    client = RunClient(
        args.uri,
        args.experiment,
        args.run_dir,
        drain_timeout=args.drain_timeout,
        notify=lambda line: print(line, file=sys.stderr, flush=True),
    )
    client.start(args.name, {"points": str(args.points)}, {"labkit.test": "spool_writer"})
    start, t0 = time.perf_counter(), time.time()
    for step in range(args.points):
        client.log_values({"x": float(step)}, step)
        if (step + 1) % 100 == 0:
            print(f"logged {step + 1}", flush=True)
        if args.interval:
            time.sleep(args.interval)
    logging_s = time.perf_counter() - start
    report = client.finish()
    total_s = time.perf_counter() - start
    assert report is not None
    print(
        json.dumps(
            {
                "run_id": client.run_id,
                "run_key": client.run_key,
                "logging_s": logging_s,
                "total_s": total_s,
                "pending": report.pending.total,
                "t0": t0,  # wall clock of the first point
                "t_end": time.time(),  # wall clock when the spool had drained
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
