"""Runs read from a tracking store (MLflow's client, or a server's REST API with plain
``requests``) into :class:`~labkit.tracking.query.RunRecord` objects, kept in a
:class:`~labkit.tracking.query._cache.RunCache`: ``labkit compare`` and ``labkit report``."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from labkit.config import tracking_uri_problem
from labkit.errors import ConfigError, TrackingError, did_you_mean
from labkit.tracking._provenance import redact_uri
from labkit.tracking.query._cache import RunCache, RunRecord

__all__ = [
    "check_store_uri",
    "fetch_artifact_file",
    "fetch_artifact_text",
    "fetch_figures",
    "fetch_history",
    "fetch_run",
    "fetch_runs",
]

Refresh = Literal["auto", "full", "none"]

#: runs started this long before the last refresh are asked for again (clock skew between hosts)
_OVERLAP_MS = 3_600_000
#: a full refresh at least this often
_FULL_EVERY_S = 86_400.0
_PAGE = 5000


def _record(run: Any, experiment: str) -> RunRecord:
    info, data = run.info, run.data
    return RunRecord(
        run_id=info.run_id,
        experiment=experiment,
        status=str(info.status),
        start_ms=info.start_time,
        end_ms=info.end_time,
        params=dict(data.params),
        metrics={k: float(v) for k, v in data.metrics.items()},
        tags={k: v for k, v in data.tags.items() if k != "mlflow.log-model.history"},
        name=info.run_name or "",
    )


def check_store_uri(uri: str) -> None:
    """TrackingError, naming the URI, when it cannot be a tracking store to read runs from: an
    unknown scheme, or an SQLite URI whose file is missing, a directory or not an SQLite
    database (:func:`labkit.config.tracking_uri_problem` with ``must_exist``). Checked before
    MLflow sees it (MLflow would create a missing file and its folders, retry a directory for
    minutes, or fail on another file with a database error)."""
    problem = tracking_uri_problem(uri, must_exist=True)
    if problem:
        where = f"tracking URI {redact_uri(uri)!r} (--tracking-uri or $MLFLOW_TRACKING_URI)"
        raise TrackingError(f"{where}: {problem}")


def _client(uri: str) -> Any:
    check_store_uri(uri)
    from labkit.tracking._mlflow import MlflowClient

    try:
        return MlflowClient(tracking_uri=uri)
    except Exception as exc:  # noqa: BLE001 - MLflow's, SQLAlchemy's and OS errors alike: the store is unusable
        raise _unreadable(uri, exc) from None


def _unreadable(uri: str, exc: BaseException) -> TrackingError:
    message = getattr(exc, "message", None) or str(exc)
    first = (" ".join(str(message).split()) or type(exc).__name__)[:300]
    return TrackingError(f"cannot read runs from {redact_uri(uri)}: {first}")


class _MlflowSource:
    """Runs through MLflow's client: any store MLflow knows (``sqlite:``, ``postgresql:``...)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.client = _client(uri)

    def experiments(self) -> dict[str, str]:
        from labkit.tracking._mlflow import MlflowException, ViewType

        try:
            found = self.client.search_experiments(view_type=ViewType.ACTIVE_ONLY)
        except MlflowException as exc:
            raise TrackingError(f"cannot read runs from {redact_uri(self.uri)}: {exc.message}") from None
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy's errors (a damaged or locked database)
            raise _unreadable(self.uri, exc) from None
        return {e.name: e.experiment_id for e in found}

    def search(self, experiment_id: str, name: str, filter_string: str = "") -> Iterator[RunRecord]:
        token = None
        while True:
            page = self.client.search_runs(
                [experiment_id], filter_string=filter_string, max_results=_PAGE, page_token=token
            )
            for run in page:
                yield _record(run, name)
            token = page.token
            if not token:
                return


class _RestSource:
    """Runs from an MLflow server's REST API with plain ``requests``: importing mlflow alone
    takes seconds, longer than a warm ``labkit compare`` should. Credentials as MLflow reads
    them: MLFLOW_TRACKING_USERNAME/PASSWORD, MLFLOW_TRACKING_TOKEN,
    MLFLOW_TRACKING_INSECURE_TLS, MLFLOW_TRACKING_SERVER_CERT_PATH."""

    def __init__(self, uri: str) -> None:
        import requests

        self.base = uri.rstrip("/")
        self.session = requests.Session()
        user, password = (
            os.environ.get("MLFLOW_TRACKING_USERNAME"),
            os.environ.get("MLFLOW_TRACKING_PASSWORD"),
        )
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        if user and password:
            self.session.auth = (user, password)
        elif token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
            self.session.verify = False
        elif os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH"):
            self.session.verify = os.environ["MLFLOW_TRACKING_SERVER_CERT_PATH"]

    def _post(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        import requests

        where = redact_uri(self.base)
        try:
            response = self.session.post(f"{self.base}/api/2.0/mlflow/{endpoint}", json=body, timeout=120)
        except requests.RequestException as exc:
            raise TrackingError(f"cannot reach the tracking server {where} ({type(exc).__name__})") from None
        if response.status_code in (401, 403):
            raise TrackingError(
                f"{where} refused to list runs (HTTP {response.status_code}): set "
                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) "
                "for a user who may read the experiments"
            )
        if response.status_code != 200:
            raise TrackingError(
                f"{where}: {endpoint} failed (HTTP {response.status_code}): {response.text[:300]}"
            )
        data: dict[str, Any] = response.json()
        return data

    def experiments(self) -> dict[str, str]:
        found: dict[str, str] = {}
        token = None
        while True:
            body: dict[str, Any] = {"max_results": 1000, "view_type": "ACTIVE_ONLY"}
            if token:
                body["page_token"] = token
            page = self._post("experiments/search", body)
            found |= {e["name"]: e["experiment_id"] for e in page.get("experiments", [])}
            token = page.get("next_page_token")
            if not token:
                return found

    def search(self, experiment_id: str, name: str, filter_string: str = "") -> Iterator[RunRecord]:
        token = None
        while True:
            body: dict[str, Any] = {
                "experiment_ids": [experiment_id],
                "filter": filter_string,
                "run_view_type": "ACTIVE_ONLY",
                "max_results": _PAGE,
            }
            if token:
                body["page_token"] = token
            page = self._post("runs/search", body)
            for run in page.get("runs", []):
                info, data = run["info"], run.get("data", {})
                yield RunRecord(
                    run_id=info["run_id"],
                    experiment=name,
                    status=info.get("status", ""),
                    start_ms=int(info["start_time"]) if info.get("start_time") is not None else None,
                    end_ms=int(info["end_time"]) if info.get("end_time") is not None else None,
                    params={p["key"]: p.get("value", "") for p in data.get("params", [])},
                    metrics={m["key"]: float(m["value"]) for m in data.get("metrics", [])},
                    tags={
                        t["key"]: t.get("value", "")
                        for t in data.get("tags", [])
                        if t["key"] != "mlflow.log-model.history"
                    },
                    name=info.get("run_name", ""),
                )
            token = page.get("next_page_token")
            if not token:
                return


def _source(uri: str) -> _MlflowSource | _RestSource:
    check_store_uri(uri)
    return _RestSource(uri) if uri.lower().startswith(("http://", "https://")) else _MlflowSource(uri)


def _experiments(found: dict[str, str], names: Sequence[str] | None) -> list[tuple[str, str]]:
    """``(id, name)`` of the experiments named (all when none are), else ConfigError."""
    if not names:
        return sorted(((i, n) for n, i in found.items()), key=lambda p: p[1])
    out = []
    for name in names:
        if name not in found:
            raise ConfigError(
                f"--experiment: no experiment {name!r} on the tracking server{did_you_mean(name, found)}; "
                f"it has: {', '.join(sorted(found)) or 'none'}"
            )
        out.append((found[name], name))
    return out


def fetch_runs(
    uri: str,
    experiments: Sequence[str] | None = None,
    *,
    cache_dir: Path,
    refresh: Refresh = "auto",
) -> list[RunRecord]:
    """The runs of ``experiments`` (every experiment when none) on the server at ``uri``,
    newest first, refreshed in the cache as ``refresh`` says (``none``: the cache as it is)."""
    source = _source(uri)
    chosen = _experiments(source.experiments(), experiments)
    with RunCache(uri, cache_dir) as cache:
        if refresh != "none":
            for experiment_id, name in chosen:
                _refresh(source, cache, experiment_id, name, full=refresh == "full")
        return cache.records([i for i, _ in chosen])


def _refresh(
    source: _MlflowSource | _RestSource, cache: RunCache, experiment_id: str, name: str, *, full: bool
) -> None:
    now_ms = int(time.time() * 1000)
    since, full_at = cache.state(experiment_id)
    if full or since is None or full_at is None or time.time() - full_at > _FULL_EVERY_S:
        cache.store(experiment_id, name, source.search(experiment_id, name), refreshed_ms=now_ms, full=True)
        return
    fresh = list(source.search(experiment_id, name, f"attributes.start_time >= {since - _OVERLAP_MS}"))
    seen = {r.run_id for r in fresh}
    pending = [r for r in cache.unfinished(experiment_id) if r not in seen]
    for i in range(0, len(pending), 100):
        ids = ", ".join(f"'{r}'" for r in pending[i : i + 100])
        fresh += source.search(experiment_id, name, f"attributes.run_id IN ({ids})")
    cache.store(experiment_id, name, fresh, refreshed_ms=now_ms, full=False)


def fetch_history(uri: str, run_id: str, metric: str) -> list[tuple[int, int, float]]:
    """Every logged point of ``metric`` in run ``run_id``: ``(step, timestamp_ms, value)``."""
    from labkit.tracking._mlflow import MlflowException

    client = _client(uri)
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise ConfigError(f"no run {run_id!r} on {redact_uri(uri)} ({exc.message})") from None
    if metric not in run.data.metrics:
        names = sorted(run.data.metrics)
        raise ConfigError(
            f"run {run_id} logged no metric {metric!r}{did_you_mean(metric, names)}; "
            f"it logged: {', '.join(names) or 'none'}"
        )
    points = client.get_metric_history(run_id, metric)
    return sorted((p.step, p.timestamp, float(p.value)) for p in points)


def fetch_figures(uri: str, run_id: str, folder: str = "figures") -> dict[str, bytes]:
    """The PNG figures a run stored under ``folder`` in its artifacts, by file stem (none: ``{}``)."""
    import tempfile

    from labkit.tracking._mlflow import MlflowException

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars in a report's output
    client = _client(uri)
    try:
        listed = client.list_artifacts(run_id, folder)
    except (MlflowException, OSError):
        return {}
    pngs = [a.path for a in listed if not a.is_dir and a.path.endswith(".png")]
    out: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="labkit-figures-") as tmp:
        for path in sorted(pngs):
            try:
                local = client.download_artifacts(run_id, path, tmp)
            except (MlflowException, OSError):
                continue
            out[Path(path).stem] = Path(local).read_bytes()
    return out


def fetch_run(uri: str, run_id: str) -> RunRecord:
    """One run by id, straight from the server (ConfigError naming it when there is none)."""
    from labkit.tracking._mlflow import MlflowException

    client = _client(uri)
    try:
        run = client.get_run(run_id)
        name = client.get_experiment(run.info.experiment_id).name
    except MlflowException as exc:
        raise ConfigError(f"no run {run_id!r} on {redact_uri(uri)} ({exc.message})") from None
    return _record(run, name)


def fetch_artifact_text(uri: str, run_id: str, path: str) -> str | None:
    """The text of artifact ``path`` of run ``run_id`` (``None`` when the run has no such file)."""
    import tempfile

    from labkit.tracking._mlflow import MlflowException

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    client = _client(uri)
    with tempfile.TemporaryDirectory(prefix="labkit-artifact-") as tmp:
        try:
            local = client.download_artifacts(run_id, path, tmp)
        except (MlflowException, OSError):
            return None
        return Path(local).read_text(encoding="utf-8", errors="replace")


_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def fetch_artifact_file(uri: str, run_id: str, path: str, *, cache_dir: Path) -> Path | None:
    """A local copy of artifact ``path`` (``outputs/test_outputs.npz``) of run ``run_id``, or
    ``None`` when the run has no such file (or the store cannot give it).

    Kept under ``<cache_dir>/artifacts/<hash of the URI>/<run id>/<path>`` and reused: a run's
    artifacts are written once (at the end of its test), so the second ``labkit plot`` or
    ``labkit report`` of the same runs downloads nothing. A missing file is not remembered (a run
    still testing may log it later). Reads through MLflow's client (any store, ``http(s)://``
    included), imported on first use."""
    from pathlib import PurePosixPath

    from labkit.tracking._mlflow import MlflowException

    parts = PurePosixPath(path).parts
    if not _RUN_ID.fullmatch(run_id):
        raise ConfigError(f"run id {run_id!r}: not an MLflow run id (letters, digits, - and _ only)")
    if not parts or PurePosixPath(path).is_absolute() or ".." in parts:
        raise ConfigError(f"artifact path {path!r}: give a relative path inside the run's artifacts")
    digest = hashlib.sha256(redact_uri(uri).encode()).hexdigest()[:16]
    target = cache_dir / "artifacts" / digest / run_id / Path(*parts)
    if target.is_file():
        return target
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    client = _client(uri)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrackingError(
            f"the artifact cache {target.parent} cannot be used ({exc}); "
            "set LABKIT_CACHE_DIR to a writable folder"
        ) from None
    with tempfile.TemporaryDirectory(prefix=".labkit-artifact-", dir=target.parent) as tmp:
        try:
            local = Path(client.download_artifacts(run_id, path, tmp))
        except (MlflowException, OSError):
            return None
        if not local.is_file():  # a folder of that name
            return None
        os.replace(local, target)  # atomic: a reader never sees half a file
    return target
