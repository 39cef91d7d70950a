"""``labkit reproduce RUN_ID``: run a logged experiment again and compare its numbers.

The resolved configuration comes from the run's ``config.yaml`` artifact; the code must be the
code the run used: the same git commit, and the same uncommitted changes (the run stores them as
``git.diff``). A mismatch is refused unless forced, and nothing is ever applied to the checkout:
the message says what to do. No torch here; the rerun itself goes through :func:`labkit.run`.

:func:`plan_rerun` makes the whole plan (what to rerun, with which config, where); the CLI
only prints it and says go: :meth:`RerunPlan.run_here` or :meth:`RerunPlan.submit`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.errors import ConfigError, ReproduceError

if TYPE_CHECKING:
    from labkit._rundir import JobOptions
    from labkit.cluster import Profile, Submission
    from labkit.runner._outcome import RunResult

__all__ = [
    "Rerun",
    "RerunPlan",
    "Reproduction",
    "ReproduceError",
    "compare_metrics",
    "plan_reproduction",
    "plan_rerun",
]


@dataclass
class Reproduction:
    """What ``labkit reproduce`` found about a run, and the config to rerun it with."""

    run_id: str
    experiment: str
    config: dict[str, Any]
    commit: str | None
    dirty: bool
    patch: str | None
    metrics: dict[str, float]
    task: str
    mismatches: list[str] = field(default_factory=list)

    def check(self, force: bool) -> list[str]:
        """Raise :class:`ReproduceError` on a mismatch unless ``force``; the warnings to print."""
        if self.mismatches and not force:
            raise ReproduceError(
                f"run {self.run_id} was made with other code than this checkout:\n  "
                + "\n  ".join(self.mismatches)
                + "\nCheck out that code (nothing is applied for you), or pass --force to rerun here anyway."
            )
        return [f"--force: rerunning despite: {m}" for m in self.mismatches]

    def config_yaml(self, runs_root: Path, uri: str) -> str:
        """The run's resolved config for the rerun: here, logging to ``uri``, tagged as a rerun."""
        import yaml

        data = dict(self.config)
        data["runs_root"] = str(runs_root)
        tracking = dict(data.get("tracking") or {})
        tracking["uri"] = uri
        tracking["tags"] = {**(tracking.get("tags") or {}), "labkit.reproduces": self.run_id}
        tracking["experiment"] = tracking.get("experiment") or self.experiment
        data["tracking"] = tracking
        return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=None))


def _normalised(patch: str) -> str:
    return "\n".join(line.rstrip() for line in patch.strip().splitlines())


def plan_reproduction(run_id: str, uri: str, cwd: Path) -> Reproduction:
    """Fetch run ``run_id`` from ``uri`` and compare its code with the checkout at ``cwd``."""
    import yaml

    from labkit.tracking import fetch_artifact_text, fetch_run, git_state

    record = fetch_run(uri, run_id)
    text = fetch_artifact_text(uri, run_id, "config.yaml")
    if text is None:
        raise ConfigError(
            f"run {run_id} has no config.yaml artifact: it was not made by labkit run, or its upload "
            "is incomplete (labkit sync its run directory)"
        )
    config = yaml.safe_load(text)
    if not isinstance(config, dict):
        raise ConfigError(f"run {run_id}: its config.yaml artifact is not a mapping")
    commit = record.tags.get("mlflow.source.git.commit")
    dirty = record.tags.get("labkit.git_dirty") == "true"
    patch = fetch_artifact_text(uri, run_id, "git.diff") if dirty else None
    plan = Reproduction(
        run_id=run_id,
        experiment=record.experiment,
        config=config,
        commit=commit,
        dirty=dirty,
        patch=patch,
        metrics=dict(record.metrics),
        task=record.tags.get("labkit.task", ""),
    )
    here = git_state(cwd)
    if commit is None:
        plan.mismatches.append("the run recorded no git commit (it was not run from a git checkout)")
    elif here is None:
        plan.mismatches.append(f"{cwd} is not a git checkout; the run was made at commit {commit[:12]}")
    elif here.commit != commit:
        plan.mismatches.append(
            f"this checkout is at {here.commit[:12]}, the run was made at {commit[:12]} "
            f"(git checkout {commit[:12]})"
        )
    elif dirty and patch is None:
        plan.mismatches.append("the run had uncommitted changes and its git.diff artifact is missing")
    elif dirty and (not here.dirty or _normalised(here.patch) != _normalised(patch or "")):
        plan.mismatches.append(
            "the run had uncommitted changes that differ from this checkout's: apply its git.diff "
            f"(mlflow artifacts download -r {run_id} -a git.diff, then git apply) on a clean checkout"
        )
    elif not dirty and here.dirty:
        plan.mismatches.append("this checkout has uncommitted changes; the run was made from a clean one")
    return plan


def compare_metrics(
    original: dict[str, float], rerun: dict[str, float], names: list[str]
) -> list[tuple[str, float, float, str]]:
    """``(metric, original, rerun, verdict)`` for each name both runs logged; the verdict is
    ``same`` (equal to 1e-9 relative), or the difference."""
    rows = []
    for name in names:
        if name not in original or name not in rerun:
            continue
        a, b = original[name], rerun[name]
        if math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b)):
            verdict = "same"
        else:
            verdict = f"differs by {b - a:+.3g}"
        rows.append((name, a, b, verdict))
    return rows


@dataclass(frozen=True)
class Rerun:
    """A rerun made here, and its test metrics beside the original's."""

    result: RunResult
    rows: list[tuple[str, float, float, str]]  #: ``(metric, original, rerun, verdict)``


@dataclass(frozen=True)
class RerunPlan:
    """What ``labkit reproduce`` reruns (:attr:`found`), with which config (:attr:`config_text`),
    written where (:attr:`config_path`, under the runs root's ``reproduce/``)."""

    found: Reproduction
    config_path: Path
    config_text: str

    def describe(self) -> str:
        """One line: the run, its experiment and task, and the code it was made with."""
        p = self.found
        commit = p.commit[:12] if p.commit else "no commit"
        return (
            f"run {p.run_id} ({p.experiment}, task {p.task or '?'}, "
            f"code {commit}{' + uncommitted changes' if p.dirty else ''})"
        )

    def check(self, force: bool) -> list[str]:
        """Raise :class:`ReproduceError` when the code differs, unless ``force``; the warnings."""
        return self.found.check(force)

    def write(self) -> Path:
        """Write the rerun's config file; its path."""
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text)
        return self.config_path

    def run_here(
        self, *, headline: Sequence[str] = (), command: str | None = None, job: JobOptions | None = None
    ) -> Rerun:
        """Rerun it on this machine from the written config; compare the ``headline`` metrics
        and every test metric the original logged."""
        from labkit.config import load_experiment
        from labkit.runner._run import run

        exp = load_experiment(self.config_path)
        result = run(exp, command=command, source=self.config_path, job=job)
        original = self.found.metrics
        names = list(headline) + sorted(k for k in original if k.startswith("test_"))
        return Rerun(result, compare_metrics(original, result.metrics, list(dict.fromkeys(names))))

    def submit(
        self, profile: Profile, profile_path: Path | None, *, command: str | None = None
    ) -> Submission:
        """Submit the rerun as a batch job with the site ``profile`` (its overrides applied)."""
        from labkit.cluster import submit_run
        from labkit.config import load_experiment

        exp = load_experiment(self.config_path, list(profile.overrides))
        return submit_run(exp, profile, profile_path, source=self.config_path, command=command)


def plan_rerun(run_id: str, *, uri: str, runs_root: Path, cwd: Path) -> RerunPlan:
    """Fetch run ``run_id`` from ``uri``, compare its code with the checkout at ``cwd``, and plan
    its rerun: its config, logging to ``uri``, under ``runs_root``."""
    found = plan_reproduction(run_id, uri, cwd)
    root = runs_root.resolve()
    return RerunPlan(found, root / "reproduce" / f"{run_id}.yaml", found.config_yaml(root, uri))
