"""The surrogate task's checks of the data and its preprocessing (the training and the test
metrics run in tests/integration/runner/test_generate.py and the shipped experiment's smoke run)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labkit import sim
from labkit.config import OptimizerConfig, SurrogateSpec
from labkit.data._base import DataInfo
from labkit.errors import DataError
from labkit.models._cvae import ConditionalVAE
from labkit.tasks._surrogate import SurrogateTask

OPTIONS = sim.options("calo")
SCALING = ((2.3, 1.3, True),)


def info(**changes: object) -> DataInfo:
    fields: dict[str, object] = {
        "in_shape": (12, 9, 8),
        "target_names": ("incident_energy",),
        "target_scaling": SCALING,
        "simulator": "calo",
        "simulator_options": dict(OPTIONS),
    }
    fields |= changes
    return DataInfo(**fields)  # type: ignore[arg-type]


def test_spec_gives_the_cells_and_the_simulator_to_the_task() -> None:
    size, args = SurrogateTask.model_outputs(SurrogateSpec(kind="surrogate"), info())
    assert size == 864 and args["simulator"] == "calo" and args["scaling"] == SCALING
    assert args["simulator_options"]["radial_edges"] == OPTIONS["radial_edges"]
    assert SurrogateTask.model_args(SurrogateSpec(kind="surrogate"), info()) == {
        "in_shape": (12, 9, 8),
        "conditions": 1,
    }


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"simulator": None}, "the data come from a file or a class of your own; a surrogate learns"),
        ({"simulator": "grf"}, "the data come from simulator 'grf'"),
        ({"target_names": ("incident_energy", "particle")}, r"must be \[incident_energy\].*got \[incident"),
        ({"simulator_options": OPTIONS | {"particle": "mixed"}}, "simulate one particle"),
        ({"in_shape": (864,)}, r"data.inputs must be the showers, shape \(12, 9, 8\)"),
        ({"simulator_options": OPTIONS | {"threshold": float("-inf")}}, "threshold must be >= 0, got -inf"),
    ],
)
def test_spec_refuses_data_it_cannot_learn(changes: dict[str, object], match: str) -> None:
    with pytest.raises(DataError, match=match):
        SurrogateTask.model_outputs(SurrogateSpec(kind="surrogate"), info(**changes))


def task() -> SurrogateTask:
    model = ConditionalVAE((12, 9, 8), 864, conditions=1, hidden=(16,), latent=2)
    return SurrogateTask(
        model, OptimizerConfig(name="adam"), scaling=SCALING, simulator="calo", simulator_options=OPTIONS
    )


def test_preprocessing_round_trip_keeps_the_cells_and_their_zeros() -> None:
    sample = sim.simulate("calo", 50, seed=4)
    t = task()
    t.value_scale.fill_(2.5e-3)  # type: ignore[operator]
    energy = torch.from_numpy(sample.incident_energy)
    showers = torch.from_numpy(sample.showers)
    u = t.encode(showers, energy)
    assert u.shape == (50, 864) and torch.equal(u > 0, showers.reshape(50, -1) > 0)
    back = t.decode(u, energy)
    np.testing.assert_allclose(back.numpy(), sample.showers, rtol=2e-6, atol=1e-9)
    # the condition is the data module's normalised log E, and back
    c = t.condition(sample.incident_energy)
    assert c.shape == (50, 1)
    np.testing.assert_allclose(t.energy(c).numpy(), sample.incident_energy, rtol=1e-6)
    np.testing.assert_allclose(c[:, 0].numpy(), (np.log(sample.incident_energy) - 2.3) / 1.3, rtol=1e-5)


def test_generated_showers_have_the_grid_exact_zeros_and_nothing_below_threshold() -> None:
    t = task()
    t.value_scale.fill_(2.5e-3)  # type: ignore[operator]
    showers = t.generate(np.geomspace(1.0, 100.0, 64), seed=2)
    assert showers.shape == (64, 12, 9, 8) and showers.dtype == np.float32
    threshold = OPTIONS["threshold"]
    assert isinstance(threshold, float)
    assert np.all((showers == 0) | (showers >= threshold * (1 - 1e-6))) and (showers == 0).any()
    np.testing.assert_array_equal(showers, t.generate(np.geomspace(1.0, 100.0, 64), seed=2))


def two_stage_task() -> SurrogateTask:
    from labkit.models import TwoStageShowerModel

    torch.manual_seed(0)
    model = TwoStageShowerModel((12, 9, 8), 864, flow_transforms=2, flow_hidden=(16,), shape_hidden=(32,))
    return SurrogateTask(
        model, OptimizerConfig(name="adam"), scaling=SCALING, simulator="calo", simulator_options=OPTIONS
    )


def test_the_two_stage_model_generates_through_the_task_with_the_readout_of_the_simulator() -> None:
    t = two_stage_task()
    assert t.two_stage and t.noise == OPTIONS["noise"] and t.threshold == OPTIONS["threshold"]
    energy = np.geomspace(1.0, 100.0, 32)
    showers = t.generate(energy, seed=2, batch_size=10)  # four batches, each with its own seed
    assert showers.shape == (32, 12, 9, 8) and showers.dtype == np.float32
    assert np.all((showers == 0) | (showers >= OPTIONS["threshold"] * (1 - 1e-6)))  # type: ignore[operator]
    np.testing.assert_array_equal(showers, t.generate(energy, seed=2, batch_size=10))


def test_the_two_stage_loss_is_the_sum_of_its_three_terms() -> None:
    t = two_stage_task()
    sample = sim.simulate("calo", 16, seed=4)
    c = t.condition(sample.incident_energy)
    batch = (torch.from_numpy(sample.showers), c)
    t.model.eval()
    terms = t.model(batch[0], torch.from_numpy(sample.incident_energy), c)
    expected = (terms.flow + terms.shape + terms.profile).mean()
    assert float(t._batch_loss(batch)) == pytest.approx(float(expected), rel=1e-5)
