"""Notifications when runs and studies end: a Slack/Mattermost incoming webhook (its URL a secret
read from the environment at the CLI edge) and, for batch jobs, SLURM's own mail (set through
the cluster profile's mail fields). Standard library only: no torch, no MLflow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_exports

__all__, _lazy_getattr = lazy_exports(
    __name__,
    {
        "labkit.notify._message": ("Notice", "headline_metric", "render", "run_link"),
        "labkit.notify._send": ("WEBHOOK_TIMEOUT", "Notifier", "send_webhook"),
    },
)

if TYPE_CHECKING:  # the same names for type checkers; test_public_surface checks they agree
    from labkit.notify._message import Notice as Notice
    from labkit.notify._message import headline_metric as headline_metric
    from labkit.notify._message import render as render
    from labkit.notify._message import run_link as run_link
    from labkit.notify._send import WEBHOOK_TIMEOUT as WEBHOOK_TIMEOUT
    from labkit.notify._send import Notifier as Notifier
    from labkit.notify._send import send_webhook as send_webhook
else:
    __getattr__ = _lazy_getattr
