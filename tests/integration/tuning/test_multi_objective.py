"""A study of two objectives on calo_pid (quality against size): it finishes, ``labkit tune best``
lists its Pareto front and writes one experiment file per point, and a written file runs."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from labkit.config import Experiment, load_experiment
from labkit.tuning import StudyHandle, tune

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Load = Callable[..., Experiment]
# one hidden layer: parameters grow with the width, and the validation loss falls with it (test_auc
# is 1.0 from a width of 8 on here: a front of quality against size needs a measure that does not
# saturate on this easy a task)
WIDTHS = [[1], [2], [4], [16], [64]]
SEARCH = (
    "search={objectives: [{metric: val_loss, direction: minimize}, {metric: parameters, direction: minimize}],"
    f" sampler: grid, trials: {len(WIDTHS)}, params: {{model.hidden: {{type: categorical, choices: {WIDTHS}}}}}}}"
)
TINY = ["data.events=1500", "data.batch_size=32", "trainer.max_epochs=2", "trainer.early_stopping=null"]


def test_two_objectives_on_calo_pid(load: Load, tmp_path: Path, store: str) -> None:
    from labkit.cli._tune import tune_app

    exp = load("calo_pid", *TINY, SEARCH)
    url = f"sqlite:///{tmp_path / 's.db'}"
    report = tune(exp, study="pid2", storage=url, workers=1)
    assert report.tally.counts == {"COMPLETE": len(WIDTHS)}
    assert report.best_trial is None  # several objectives: no single best

    handle = StudyHandle.load("pid2", url)
    for t in handle.trials():  # val_loss at the tested checkpoint, parameters from the cost measure
        assert 0.0 < t.values[0] < 2.0 and t.values[1] > 0
    client = MlflowClient(store)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    trial_runs = [r for r in runs if "labkit.trial" in r.data.tags]
    assert len(trial_runs) == len(WIDTHS)
    for r in trial_runs:
        m = r.data.metrics
        assert m["parameters"] > 0 and m["inference_ms"] > 0 and m["inference_ms_b256"] > 0
        assert "test_auc" in m
    parent = next(r for r in runs if "labkit.trial" not in r.data.tags)
    figures = {a.path for a in client.list_artifacts(parent.info.run_id, "figures")}
    assert figures == {"figures/pareto_front.png"}

    status = CliRunner().invoke(tune_app, ["status", "--study", "pid2", "--storage", url])
    assert status.exit_code == 0, status.output
    assert report.front_size is not None and report.front_size >= 3
    assert (
        f"front      {report.front_size} complete trial(s) on the Pareto front of val_loss, parameters"
        in status.output
    ), status.output

    out = tmp_path / "front"
    result = CliRunner().invoke(tune_app, ["best", "--study", "pid2", "--storage", url, "--write", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    rows = [line for line in lines if re.match(r"^  \d+ ", line)]
    assert lines[0].startswith("labkit: study pid2: Pareto front of ") and len(rows) >= 3, result.output
    assert lines[1].split()[:5] == ["trial", "val_loss", "(min)", "parameters", "(min)"]
    written = sorted(out.glob("trial-*.yaml"))
    assert [p.name for p in written] == [f"trial-{int(r.split()[0]):03d}.yaml" for r in rows]
    assert (out / "pareto_front.png").is_file()
    assert f"labkit: wrote {len(rows)} files in {out}" in lines[-1]

    import labkit

    chosen = [load_experiment(p, cwd=tmp_path) for p in written]  # each is a complete experiment
    assert all(e.search is None for e in chosen)
    assert len({tuple(getattr(e.model, "hidden", ())) for e in chosen}) == len(rows)
    ran = labkit.run(
        chosen[0].model_copy(update={"trainer": chosen[0].trainer.model_copy(update={"max_epochs": 1})}),
        progress="none",
    )
    assert "test_auc" in ran.metrics and {"parameters", "inference_ms"} <= set(ran.cost)

    one = CliRunner().invoke(
        tune_app, ["best", "--study", "pid2", "--storage", url, "-o", str(tmp_path / "x.yaml")]
    )
    assert one.exit_code == 2 and "choose a point with --trial N" in one.output
    single = CliRunner().invoke(
        tune_app,
        [
            "best",
            "--study",
            "pid2",
            "--storage",
            url,
            "--trial",
            rows[0].split()[0],
            "-o",
            str(tmp_path / "x.yaml"),
        ],
    )
    assert single.exit_code == 0 and load_experiment(tmp_path / "x.yaml", cwd=tmp_path).search is None
