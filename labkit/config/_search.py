"""The ``search:`` section: what ``labkit tune`` varies, and how it searches (no optuna here)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, PositiveInt, model_validator

from labkit.config._base import Section

__all__ = ["CategoricalParam", "FloatParam", "IntParam", "SearchConfig", "SearchParam"]


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


SearchParam = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]


class SearchConfig(Section):
    """How ``labkit tune`` searches: the metric, the budget, the sampler and pruner, the space."""

    metric: str = Field(default="val_loss", description="a metric the task logs every validation")
    direction: Literal["minimize", "maximize"] = "minimize"
    trials: PositiveInt = Field(default=20, description="finished trials the study ends with")
    sampler: Literal["tpe", "random", "cmaes", "gp", "grid", "qmc"] = "tpe"
    pruner: Literal["hyperband", "median", "asha", "none"] = "median"
    params: dict[str, SearchParam] = Field(min_length=1, description="dotted experiment key → range")

    @model_validator(mode="after")
    def _grid_needs_a_grid(self) -> SearchConfig:
        if self.sampler == "grid":
            for key, param in self.params.items():
                if isinstance(param, FloatParam) and param.step is None:
                    raise ValueError(f"sampler grid needs a step for the float parameter {key!r}")
        return self

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
