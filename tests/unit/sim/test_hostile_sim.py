"""Hostile simulator options (issue 14): counts and sizes never allocate without a bound, seeds
are checked, and an unwritable output is a DataError naming the path, before any event is made."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from labkit import sim
from labkit.data._simulated import SimulatedDataModule
from labkit.errors import ConfigError, DataError
from labkit.sim import _registry
from labkit.sim._common import check_output, write_hdf5


@pytest.mark.parametrize("name", sorted(sim.SIMULATORS))
def test_a_trillion_events_fail_fast_naming_n(name: str) -> None:
    with pytest.raises(ConfigError, match=r"n must be an integer <= 1_000_000_000, got 1000000000000"):
        sim.simulate(name, 10**12, seed=0)


def test_events_that_do_not_fit_in_memory_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_registry, "memory_budget", lambda: 10 * 2**20)
    with pytest.raises(ConfigError, match=r"n: 100_000 grf events need about .* GiB of memory.*at most \d"):
        sim.simulate("grf", 100_000, seed=0)


@pytest.mark.parametrize("seed", [2**32, 2**64, -1])
def test_seeds_beyond_32_bits_or_negative_are_refused(seed: int) -> None:
    with pytest.raises(ConfigError, match=rf"seed must be a non-negative integer below 2\*\*32.*got {seed}"):
        sim.simulate("grf", 5, seed=seed)


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("grf", {"size": 10**6}, r"size must be an integer <= 4_096"),
        ("tracks", {"size": 10**6}, r"size must be an integer <= 4_096"),
        ("calo", {"layers": 1000, "angular_bins": 1000}, r"at most 1_000_000 cells per shower"),
    ],
)
def test_options_that_size_one_event_are_bounded(name: str, options: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        sim.simulate(name, 5, seed=0, **options)


def _grf(tmp_path: Path, **kwargs: object) -> SimulatedDataModule:
    args: dict[str, object] = {
        "simulator": "grf",
        "events": 200,
        "parameters": {"size": 8},
        "inputs": "fields",
        "targets": ["amplitude", "tilt"],
        "cache_dir": str(tmp_path),
        "target_kind": "values",
    }
    return SimulatedDataModule(**(args | kwargs))  # type: ignore[arg-type]


def test_data_events_too_many_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.events must be an integer <= 1_000_000_000"):
        _grf(tmp_path, events=10**12).setup()
    assert not (tmp_path / "sim").exists()


def test_data_sim_seed_beyond_32_bits_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.sim_seed .* must be an integer in \[0, 2\*\*32\)"):
        _grf(tmp_path, sim_seed=2**64).setup()


def test_data_parameters_out_of_bounds_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.parameters: size must be an integer <= 4_096"):
        _grf(tmp_path, parameters={"size": 10**6}).setup()


def test_an_output_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"is a directory; give the HDF5 file to write"):
        check_output(tmp_path)
    sample = sim.simulate("grf", 3, seed=0, size=4)
    with pytest.raises(DataError, match=r"cannot write .*: it is a directory"):
        sim.write_h5(sample, tmp_path)


def test_an_output_under_a_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(DataError, match=r"cannot write .*file/sub/out\.h5: .*file is not a directory"):
        check_output(blocker / "sub" / "out.h5")
    with pytest.raises(DataError, match=r"cannot write .*file/sub/out\.h5 \(Not a directory\)"):
        write_hdf5(blocker / "sub" / "out.h5", {"x": np.zeros(3)}, {})


def test_an_existing_output_needs_force(tmp_path: Path) -> None:
    out = tmp_path / "out.h5"
    out.write_text("")
    with pytest.raises(DataError, match=r"out\.h5 exists"):
        check_output(out)
    assert check_output(out, force=True) == out
    assert check_output(tmp_path / "new" / "deeper" / "out.h5") == tmp_path / "new" / "deeper" / "out.h5"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_output_without_permission_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(DataError, match=r"no permission to write in .*locked"):
            check_output(locked / "out.h5")
        with pytest.raises(DataError, match=r"cannot write .*locked/out\.h5 \(.*[Pp]ermission"):
            write_hdf5(locked / "out.h5", {"x": np.zeros(3)}, {})
    finally:
        locked.chmod(0o700)
