"""The ``search:`` section: what ``labkit tune`` varies, and how it searches (no optuna here)."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, PositiveInt, model_validator

from labkit.config._base import Section, component_union

__all__ = [
    "MAX_GRID",
    "BudgetConfig",
    "CategoricalParam",
    "FloatParam",
    "IntParam",
    "ObjectiveConfig",
    "SearchConfig",
    "SearchParam",
]

#: most points a grid search may have (each one is a training run)
MAX_GRID = 10**6


class FloatParam(Section):
    """A real number in ``[low, high]``, on a log scale if ``log``, on a grid if ``step``."""

    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(default=None, gt=0.0)

    @model_validator(mode="after")
    def _range(self) -> FloatParam:
        if self.low >= self.high:
            raise ValueError(f"empty range: low ({self.low:g}) must be below high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0 (a log range cannot reach {self.low:g})")
        if self.log and self.step is not None:
            raise ValueError("log: true and step cannot be combined")
        return self


class IntParam(Section):
    """An integer in ``[low, high]`` (both included), every ``step``, on a log scale if ``log``."""

    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: PositiveInt = 1

    @model_validator(mode="after")
    def _range(self) -> IntParam:
        if self.low >= self.high:
            raise ValueError(f"empty range: low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0 (a log range cannot reach {self.low})")
        if self.log and self.step != 1:
            raise ValueError("log: true needs step 1")
        return self


class CategoricalParam(Section):
    """One of ``choices`` (numbers, strings, lists such as layer widths)."""

    type: Literal["categorical"]
    choices: list[Any] = Field(min_length=1)


if TYPE_CHECKING:
    SearchParam = FloatParam | IntParam | CategoricalParam
else:  # chosen by ``type`` (a function, not Field(discriminator=...): Section checks every field)
    SearchParam = component_union(FloatParam, IntParam, CategoricalParam, key="type", class_path=False)


class BudgetConfig(Section):
    """When a study stops claiming new trials: once the GPU-hours (counted like a run's
    ``gpu_hours``) or the wall-clock hours of its finished and running trials reach these."""

    gpu_hours: float | None = Field(default=None, gt=0, le=1e7, description="GPU-hours of all trials")
    wall_hours: float | None = Field(default=None, gt=0, le=1e5, description="hours since the study began")

    @model_validator(mode="after")
    def _a_limit(self) -> BudgetConfig:
        if self.gpu_hours is None and self.wall_hours is None:
            raise ValueError("name gpu_hours, wall_hours or both")
        return self


class ObjectiveConfig(Section):
    """One objective of a multi-objective study: a metric the run logs and its direction
    (``inference_ms`` and ``parameters`` are measured by labkit at test time)."""

    metric: str = Field(min_length=1)
    direction: Literal["minimize", "maximize"]


#: samplers that handle several objectives
MULTI_OBJECTIVE_SAMPLERS = ("tpe", "nsga2", "nsga3", "random", "qmc", "grid", "gp")


class SearchConfig(Section):
    """How ``labkit tune`` searches: the metric, the budget, the sampler and pruner, the space."""

    metric: str = Field(default="val_loss", description="a metric the task logs every validation")
    direction: Literal["minimize", "maximize"] = "minimize"
    trials: int = Field(default=20, gt=0, le=MAX_GRID, description="finished trials the study ends with")
    sampler: Literal["tpe", "random", "cmaes", "gp", "grid", "qmc", "nsga2", "nsga3"] = "tpe"
    pruner: Literal["hyperband", "median", "asha", "none"] = "median"
    params: dict[str, SearchParam] = Field(min_length=1, description="dotted experiment key → range")
    budget: BudgetConfig | None = Field(default=None, description="stop claiming trials at this spend")
    objectives: tuple[ObjectiveConfig, ...] | None = Field(
        default=None,
        min_length=2,
        max_length=4,
        description="several objectives (a Pareto front) instead of metric/direction",
    )

    @model_validator(mode="after")
    def _objectives(self) -> SearchConfig:
        if self.objectives is None:
            if self.sampler in ("nsga2", "nsga3"):
                raise ValueError(f"sampler {self.sampler} is for several objectives: name search.objectives")
            return self
        given = self.model_fields_set
        if (self.metric, self.direction) != ("val_loss", "minimize"):  # a dumped file holds the defaults
            raise ValueError(
                "give either metric and direction (one objective) or objectives (several), not both"
            )
        if self.sampler not in MULTI_OBJECTIVE_SAMPLERS:
            raise ValueError(
                f"sampler {self.sampler} handles one objective; for objectives use one of "
                + ", ".join(MULTI_OBJECTIVE_SAMPLERS)
            )
        if "pruner" in given and self.pruner != "none":
            raise ValueError(
                f"pruner {self.pruner}: Optuna cannot prune a study of several objectives; "
                "leave pruner out or set pruner: none"
            )
        metrics = [o.metric for o in self.objectives]
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"objectives name a metric twice: {metrics}")
        object.__setattr__(self, "pruner", "none")  # no pruning with several objectives
        return self

    @model_validator(mode="after")
    def _grid_needs_a_grid(self) -> SearchConfig:
        if self.sampler == "grid":
            for key, param in self.params.items():
                if isinstance(param, FloatParam) and param.step is None:
                    raise ValueError(f"sampler grid needs a step for the float parameter {key!r}")
            counts = self.grid_sizes()
            size = math.prod(counts.values())
            if size > MAX_GRID:
                shown = ", ".join(f"{key} ({_count(n)})" for key, n in counts.items())
                raise ValueError(
                    f"sampler grid: the grid has {_count(size)} points, more than {MAX_GRID:,}; the values "
                    f"per parameter: {shown}; use fewer values or a larger step, or another sampler"
                )
        return self

    def grid_sizes(self) -> dict[str, int]:
        """How many values each parameter takes on a grid, counted exactly without listing them."""
        return {key: _points(param) for key, param in self.params.items()}

    def grid(self) -> dict[str, list[Any]]:
        """Every value of each parameter, for the grid sampler."""
        out: dict[str, list[Any]] = {}
        for key, p in self.params.items():
            if isinstance(p, CategoricalParam):
                out[key] = list(p.choices)
            elif isinstance(p, IntParam):
                out[key] = list(range(p.low, p.high + 1, p.step))
            else:
                assert p.step is not None
                n = round((p.high - p.low) / p.step)
                out[key] = [p.low + i * p.step for i in range(n + 1)]
        return out


def _points(param: FloatParam | IntParam | CategoricalParam) -> int:
    """How many values ``param`` has on a grid, exactly (rational arithmetic: a float division
    rounds or overflows for a tiny step)."""
    if isinstance(param, CategoricalParam):
        return len(param.choices)
    if isinstance(param, IntParam):
        return (param.high - param.low) // param.step + 1
    assert param.step is not None
    return round((Fraction(param.high) - Fraction(param.low)) / Fraction(param.step)) + 1


def _count(n: int) -> str:
    """``n`` for a message; never ``str()`` of a huge int (Python refuses past 4300 digits)."""
    return f"{n:,}" if n < 10**12 else f"about 10^{math.floor(math.log10(n))}"
