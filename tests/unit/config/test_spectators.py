"""``data.spectators``: per-event values the model does not see, checked at the config edge."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.config import FileSpec, SimulatedSpec, load_experiment
from labkit.errors import ConfigError
from tests.conftest import EXPERIMENTS

MLP = EXPERIMENTS / "digits_mlp.yaml"
FILE = "data={name: file, path: d.h5, inputs: [pt, eta, nhits], targets: label"
SIM = "data={name: simulated, simulator: calo, inputs: showers, targets: particle"


def _load(data: str, tmp_path: Path) -> object:
    return load_experiment(MLP, [data], cwd=tmp_path).data


def test_spectators_default_to_none_and_take_a_list(tmp_path: Path) -> None:
    assert isinstance(spec := _load(FILE + "}", tmp_path), FileSpec)
    assert spec.spectators == ()
    spec = _load(FILE + ", spectators: [mass, phi]}", tmp_path)
    assert isinstance(spec, FileSpec) and spec.spectators == ("mass", "phi")
    assert spec.options()["spectators"] == ("mass", "phi")  # handed to the data module
    spec = _load(FILE + ", spectators: mass}", tmp_path)  # one name without brackets
    assert isinstance(spec, FileSpec) and spec.spectators == ("mass",)


@pytest.mark.parametrize(
    ("spectators", "pattern"),
    [
        ("['']", r"spectators: an empty name in \[''\]; name a column"),
        ("[mass, ' ']", r"spectators: an empty name"),
        ("[mass, mass]", r"spectators: 'mass' is named twice in \['mass', 'mass'\]"),
        (
            "[eta]",
            r"spectators: 'eta' is also in data\.inputs; a spectator is a value the model does not see",
        ),
        ("[label]", r"spectators: 'label' is also in data\.targets"),
        ("[1]", r"spectators"),
    ],
)
def test_bad_spectators_are_named(spectators: str, pattern: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=pattern):
        _load(FILE + f", spectators: {spectators}}}", tmp_path)


def test_simulated_spectators_are_the_simulators_per_event_values(tmp_path: Path) -> None:
    spec = _load(SIM + ", spectators: [incident_energy]}", tmp_path)
    assert isinstance(spec, SimulatedSpec) and spec.spectators == ("incident_energy",)
    with pytest.raises(
        ConfigError,
        match=r"spectators: simulator 'calo' has no per-event value 'incident_enrgy' \(did you mean "
        r"'incident_energy'\?\); choose from: incident_energy, particle",
    ):
        _load(SIM + ", spectators: [incident_enrgy]}", tmp_path)
    # the showers are images, not one value per event
    with pytest.raises(ConfigError, match=r"no per-event value 'showers'"):
        load_experiment(
            MLP,
            [
                "data={name: simulated, simulator: calo, inputs: incident_energy, targets: particle, "
                "spectators: [showers]}"
            ],
            cwd=tmp_path,
        )
    with pytest.raises(ConfigError, match=r"spectators: 'particle' is also in data\.targets"):
        _load(SIM + ", spectators: [particle]}", tmp_path)
