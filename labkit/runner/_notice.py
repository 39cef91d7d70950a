"""The run's notifications: what :class:`~labkit.runner.RunSession` tells the notifier the CLI
built (``RunOptions.notifier``) when the run ends: finished, failed, nan or preempted.

Only rank 0 sends; a notification never fails the run (the notifier never raises, and building
the message is guarded here) and never waits more than the webhook's timeout.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from labkit.runner._session import RunSession

__all__ = ["notify_run"]


def notify_run(
    session: RunSession, event: str, *, detail: str = "", metrics: Mapping[str, float] | None = None
) -> None:
    """Send ``event`` for the session's run if its notifier wants it (rank 0 only)."""
    notifier = session.options.notifier
    if notifier is None or not notifier.wants(event) or not getattr(session, "leader", True):
        return
    stream: TextIO = session.stream
    try:
        from labkit.cluster import current_job_id
        from labkit.notify import Notice, headline_metric, run_link

        exp = session.exp
        tracker = session.tracker
        run_id = session.run_id
        experiment_id = tracker.experiment_id if tracker is not None else None
        monitor = (
            exp.trainer.checkpoint.monitor,
            f"test_{exp.trainer.checkpoint.monitor.removeprefix('val_')}",
        )
        best = headline_metric(metrics or {}, notifier.headline, (monitor[1], monitor[0]))
        notice = Notice(
            event=event,
            experiment=exp.name,
            run=exp.tracking.run_name or exp.name,
            run_id=run_id,
            host=socket.gethostname(),
            job_id=current_job_id(session.job.environ),
            metric=best[0] if best else None,
            value=best[1] if best else None,
            link=run_link(exp.tracking.uri or "", run_id, experiment_id, session.run_dir.path),
            detail=detail,
        )
    except Exception as exc:  # noqa: BLE001 - a notification never fails the run
        print(f"labkit: notify: no {event} message ({type(exc).__name__}: {exc})", file=stream, flush=True)
        return
    notifier.send(notice, stream=stream)
