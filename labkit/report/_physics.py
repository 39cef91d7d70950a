"""Cross-run physics curves from the runs' stored test outputs: ``labkit plot`` and the report's
"Physics curves" section. Runs that differ only by seed (as in ``labkit compare``) are one curve.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from labkit.errors import ConfigError, LabkitError
from labkit.report._figures import DEFAULT_WORKING_POINT, CurveGroup, physics_figures
from labkit.report._outputs import RunOutputs, check_same_task, load_outputs
from labkit.report._table import _BOOKKEEPING, SEED_PARAMS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from labkit.tracking.query import RunRecord

__all__ = ["group_by_seed", "plot_runs", "save_figures", "seed_groups"]


def _key(rec: RunRecord) -> tuple[str, tuple[tuple[str, str], ...]]:
    params = tuple(
        sorted(
            (k, v) for k, v in rec.params.items() if k not in SEED_PARAMS and not k.startswith(_BOOKKEEPING)
        )
    )
    return rec.experiment, params


def group_by_seed(records: Sequence[RunRecord]) -> list[list[RunRecord]]:
    """The runs grouped as ``labkit compare`` groups them: same experiment and parameters but for
    ``seed``/``data.sim_seed`` (bookkeeping parameters aside); groups in the order of their first run."""
    groups: dict[tuple[str, tuple[tuple[str, str], ...]], list[RunRecord]] = {}
    for rec in records:
        groups.setdefault(_key(rec), []).append(rec)
    return list(groups.values())


def _labels(groups: Sequence[Sequence[RunRecord]]) -> list[str]:
    """A short label per group: the parameters that tell the groups apart, and the first run id."""
    records = [r for g in groups for r in g]
    keys = sorted(
        {k for r in records for k in r.params if k not in SEED_PARAMS and not k.startswith(_BOOKKEEPING)}
    )
    varying = [k for k in keys if len({r.params.get(k) for r in records}) > 1]
    several = len({r.experiment for r in records}) > 1
    labels = []
    for group in groups:
        first = group[0]
        parts = [f"{k}={first.params.get(k, '-')}" for k in varying[:3]]
        if several and first.experiment:
            parts.insert(0, first.experiment)
        ident = first.run_id[:8] + (f"+{len(group) - 1}" if len(group) > 1 else "")
        labels.append(f"{' '.join(parts)} [{ident}]" if parts else ident)
    return labels


def seed_groups(records: Sequence[RunRecord], outputs: Callable[[RunRecord], RunOutputs]) -> list[CurveGroup]:
    """:class:`CurveGroup` objects of ``records`` grouped by seed, their outputs read by ``outputs``."""
    grouped = group_by_seed(records)
    return [
        CurveGroup(label=label, runs=tuple(outputs(r) for r in group))
        for label, group in zip(_labels(grouped), grouped, strict=True)
    ]


def _record(uri: str, run_id: str, runs_root: Path | None) -> RunRecord:
    from labkit.tracking.query import RunRecord, fetch_run

    try:
        return fetch_run(uri, run_id)
    except LabkitError:
        if runs_root is None:
            raise
        return RunRecord(run_id=run_id, experiment="", status="", start_ms=None, end_ms=None)  # offline run


def plot_runs(
    runs: Sequence[str],
    *,
    uri: str,
    cache_dir: Path,
    runs_root: Path | None = None,
    reference: str | None = None,
    spectator: str | None = None,
    working_point: float = DEFAULT_WORKING_POINT,
) -> dict[str, Figure]:
    """The physics figures of ``runs`` (MLflow run ids, or run directories / keys under
    ``runs_root``) by name, drawn from their stored test outputs; ``reference`` (one of them, or
    added to them) gets the ratio panel. DataError naming the run that stored no outputs;
    ConfigError when the runs mix task kinds."""
    if not runs:
        raise ConfigError("name at least one run to plot")
    wanted = list(dict.fromkeys([*runs, *([reference] if reference else [])]))
    records = [_record(uri, r, runs_root) for r in wanted]
    loaded = {
        rec.run_id: load_outputs(rec, uri=uri, cache_dir=cache_dir, runs_root=runs_root) for rec in records
    }
    check_same_task(list(loaded.values()))
    groups = seed_groups(records, lambda rec: loaded[rec.run_id])
    ref_index = None
    if reference is not None:
        ref_index = next(i for i, g in enumerate(groups) if any(o.run_id == reference for o in g.runs))
    return physics_figures(groups, reference=ref_index, spectator=spectator, working_point=working_point)


def save_figures(figures: dict[str, Figure], output: Path) -> list[Path]:
    """Write the figures: the first to ``output`` (``.png`` or ``.pdf``), each further one beside
    it as ``<stem>_<name><suffix>``. ConfigError for another suffix."""
    suffix = output.suffix.lower()
    if suffix not in (".png", ".pdf"):
        raise ConfigError(f"-o {output}: write a .png or a .pdf (got {output.suffix or 'no suffix'!r})")
    written = []
    for i, (name, fig) in enumerate(figures.items()):
        path = output if i == 0 else output.with_name(f"{output.stem}_{name}{output.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150 if suffix == ".png" else None)
        written.append(path)
    return written
