"""Simulator-backed data: generated once, cached by the generator's arguments, and the bounds
the simulator knows logged as reference metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.data._simulated import SimulatedDataModule, default_cache_dir
from labkit.errors import ConfigError


def grf(cache: Path, **kwargs: object) -> SimulatedDataModule:
    args: dict[str, object] = {
        "simulator": "grf",
        "events": 200,
        "parameters": {"size": 16},
        "inputs": "fields",
        "targets": ["amplitude", "tilt"],
        "cache_dir": str(cache),
        "target_kind": "values",
        "seed": 1,
    }
    return SimulatedDataModule(**(args | kwargs))  # type: ignore[arg-type]


def test_events_are_generated_once_and_cached_by_their_arguments(tmp_path: Path) -> None:
    first = grf(tmp_path)
    first.setup()
    files = list((tmp_path / "sim").glob("*.h5"))
    assert len(files) == 1 and files[0] == first.cache_file()
    mtime = files[0].stat().st_mtime_ns
    again = grf(tmp_path)
    again.setup()
    assert files[0].stat().st_mtime_ns == mtime  # read, not generated again
    assert again.info.checksum == first.info.checksum
    other = grf(tmp_path, parameters={"size": 16, "tilt_range": [-2.5, -1.5]})
    assert other.cache_file() != first.cache_file()
    assert grf(tmp_path, sim_seed=9).cache_file() != first.cache_file()
    assert grf(tmp_path, events=300).cache_file() != first.cache_file()


def test_grf_reference_metrics_are_the_cramer_rao_bounds_of_the_test_split(tmp_path: Path) -> None:
    dm = grf(tmp_path)
    dm.setup()
    ref = dm.info.reference_metrics
    assert set(ref) == {"crb_amplitude", "crb_tilt"} and all(v > 0 for v in ref.values())
    assert dm.info.target_names == ("amplitude", "tilt") and dm.info.in_shape == (16, 16)


def test_labels_of_simulated_particles(tmp_path: Path) -> None:
    dm = SimulatedDataModule(
        simulator="calo",
        events=60,
        parameters={"particle": "mixed", "layers": 4},
        inputs="showers",
        targets="particle",
        labels={11: "electron", 211: "pion"},
        cache_dir=str(tmp_path),
    )
    dm.setup()
    assert dm.info.class_names == ("electron", "pion") and dm.info.in_shape == (4, 9, 8)


def test_unknown_simulator(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"data\.simulator: no simulator 'gfr' \(did you mean 'grf'\?\); choose one of: calo, dijet, grf, jets, tracks",
    ):
        grf(tmp_path, simulator="gfr").setup()


def test_cache_dir_that_cannot_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"data\.cache_dir: cannot create"):
        grf(blocker / "cache").setup()


def test_default_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LABKIT_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("LABKIT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "labkit"


@pytest.mark.parametrize("standardize", [False, True])
def test_tracks_reference_metric_is_the_amplitude_window_baseline_on_raw_amplitudes(
    tmp_path: Path, standardize: bool
) -> None:
    import numpy as np

    from labkit import sim

    dm = SimulatedDataModule(
        simulator="tracks",
        events=120,
        parameters={"size": 24, "pitch": 0.02},
        inputs="images",
        targets="labels",
        labels={0: "background", 1: "track", 2: "shower", 3: "noise"},
        cache_dir=str(tmp_path),
        target_kind="masks",
        standardize=standardize,
        seed=2,
    )
    dm.setup()
    ref = dm.info.reference_metrics
    assert dm.info.class_names == ("background", "track", "shower", "noise") and dm.info.num_classes == 4
    # by hand, from the simulator's own events: window fitted on the training split, IoU on the test split
    events = sim.simulate_tracks(120, seed=2, size=24, pitch=0.02)
    train, test = dm._parts["train"], dm._parts["test"]
    lo, hi = sim.fit_amplitude_window(events.images[train], events.labels[train] == 1)
    expected = sim.amplitude_window_iou(events.images[test], events.labels[test] == 1, lo, hi)
    assert ref["baseline_iou_track"] == pytest.approx(expected) and 0.3 < expected < 1.0
    assert ref["baseline_track_window_lo"] == pytest.approx(lo)
    assert ("baseline_track_window_hi" in ref) == bool(np.isfinite(hi))
