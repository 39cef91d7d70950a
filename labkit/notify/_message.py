"""What a notification says: the event, the run, where it ran, its headline metric, a link."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

__all__ = ["Notice", "headline_metric", "render", "run_link"]

_VERB = {
    "finished": "finished",
    "failed": "FAILED",
    "nan": "stopped: the training loss is not finite",
    "preempted": "was preempted",
    "study_done": "ended",
}


@dataclass(frozen=True)
class Notice:
    """One notification: plain values, nothing secret (the webhook URL is never in one)."""

    event: str  #: one of :data:`labkit.config.NOTIFY_EVENTS`
    experiment: str  #: the experiment's name
    run: str  #: the run's name (a study's name for ``study_done``)
    run_id: str | None = None  #: the MLflow run id (None: not on the server yet)
    host: str | None = None
    job_id: str | None = None  #: the SLURM job id, if in a batch job
    metric: str | None = None  #: the headline metric's name
    value: float | None = None  #: and its value
    link: str | None = None  #: where to look: the MLflow page, or the run id and its store
    detail: str = ""  #: one line more: the error, what happens to a preempted job, trial counts

    @property
    def kind(self) -> str:
        return "study" if self.event == "study_done" else "run"


def render(notice: Notice) -> str:
    """The message's text: one headline line, then the detail and the link, each on its own line."""
    where = f" on {notice.host}" if notice.host else ""
    if notice.job_id:
        where += f" (SLURM job {notice.job_id})"
    verb = _VERB.get(notice.event, notice.event)
    line = f"labkit: {notice.kind} {notice.run} of {notice.experiment}{where} {verb}"
    if notice.metric is not None and notice.value is not None:
        line += ("; " if ":" in verb else ": ") + f"{notice.metric} = {notice.value:.6g}"
    lines = [line]
    if notice.detail:
        lines.append(_one_line(notice.detail))
    if notice.link:
        lines.append(notice.link)
    return "\n".join(lines)


def run_link(
    tracking_uri: str,
    run_id: str | None,
    experiment_id: str | None = None,
    run_dir: Path | str | None = None,
) -> str:
    """The MLflow page of the run for an http(s) tracking server (any user name and password in
    the URI left out); otherwise the run id and the store (and the run directory, whose spool
    ``labkit sync`` uploads)."""
    parts = urlsplit(_without_credentials(tracking_uri))
    if parts.scheme in ("http", "https") and run_id and experiment_id:
        base = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"
    store = _without_credentials(tracking_uri)
    text = f"MLflow run {run_id} in {store}" if run_id else f"not yet in MLflow ({store})"
    if run_dir is not None:
        text += f"; run directory {run_dir}"
    return text


def headline_metric(
    metrics: Mapping[str, float], names: Sequence[str] = (), fallback: Sequence[str] = ()
) -> tuple[str, float] | None:
    """The first of ``names`` (the task's headline metrics), then of ``fallback`` (the metric
    the checkpoint monitors), that ``metrics`` holds as a finite number; None if none."""
    for name in (*names, *fallback):
        value = metrics.get(name)
        if isinstance(value, (int, float)) and math.isfinite(value):
            return name, float(value)
    return None


def _without_credentials(uri: str) -> str:
    """``uri`` with any ``user:password@`` left out (also where its port does not parse)."""
    try:
        parts = urlsplit(uri)
    except ValueError:  # e.g. an unclosed IPv6 bracket: keep only what follows the credentials
        return uri.rpartition("@")[2]
    if "@" not in parts.netloc:
        return uri  # as written (urlunsplit would shorten sqlite:/// to sqlite:/)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
