"""Options of the registered datasets, as users write them under ``data:`` (no torch here)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from labkit.config._base import ComponentSpec, PathText, Seed

__all__ = ["DATA_SPECS", "MAX_EVENTS", "ArraysSpec", "DataSpec", "DigitsSpec", "FileSpec", "SimulatedSpec"]

#: most events a simulated dataset may ask for: labkit.sim.MAX_EVENTS (not imported: NumPy), the
#: simulators also check the memory the events need
MAX_EVENTS = 10**9
#: largest batch (2**24 events: more than fits a GPU for any real model)
MAX_BATCH = 2**24
#: most DataLoader worker processes (each is a process on the node)
MAX_WORKERS = 256


class DataSpec(ComponentSpec):
    """Options every dataset has: batching and the deterministic train/val/test split."""

    name: str
    batch_size: Annotated[int, Field(gt=0, le=MAX_BATCH)] = 64
    val_fraction: float = Field(default=0.15, gt=0.0, lt=1.0)
    test_fraction: float = Field(default=0.15, gt=0.0, lt=1.0)
    num_workers: int = Field(default=0, ge=0, le=MAX_WORKERS, description="DataLoader worker processes")

    @model_validator(mode="after")
    def _fractions_leave_training_data(self) -> DataSpec:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError(
                f"val_fraction + test_fraction = {self.val_fraction + self.test_fraction:g} "
                "leaves no training data; their sum must be below 1"
            )
        return self


class DigitsSpec(DataSpec):
    """scikit-learn's bundled handwritten digits: 1797 images of 8x8 pixels, 10 classes."""

    target: ClassVar[str] = "labkit.data._digits:DigitsDataModule"
    name: Literal["digits"]


class ArraysSpec(DataSpec):
    """Samples ``x`` and integer labels ``y`` from one ``.npz`` or HDF5 file."""

    target: ClassVar[str] = "labkit.data._arrays:ArrayDataModule"
    name: Literal["arrays"]
    path: PathText = Field(min_length=1, description="the .npz or .h5/.hdf5 file")
    x_key: str = "x"
    y_key: str = "y"
    format: Literal["auto", "npz", "hdf5"] = "auto"
    standardize: bool = Field(
        default=False, description="scale each input feature to mean 0, std 1 (fitted on train)"
    )

    def anchored(self, cwd: Path) -> ArraysSpec:
        return self.model_copy(update={"path": _anchor(self.path, cwd)})


def _anchor(path: str, cwd: Path) -> str:
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else (cwd / p).resolve())


Keys = str | tuple[str, ...]


class _Columns(DataSpec):
    """What the experiment names in the data: inputs, targets, optional event weights."""

    inputs: Keys = Field(description="one array of any shape per event, or several (N,) columns")
    targets: Keys = Field(description="class labels (one key) or real targets (one or more keys)")
    weights: str | None = Field(default=None, description="event weights, one per event")
    labels: dict[int, str] = Field(
        default_factory=dict, description="class label value -> name, e.g. {11: electron, 211: pion}"
    )
    log_targets: tuple[str, ...] = Field(default=(), description="regression targets learnt in log")
    standardize: bool = Field(default=True, description="scale each input to mean 0, std 1 (fitted on train)")
    spectators: tuple[str, ...] = Field(
        default=(),
        description="per-event values the model does not see, kept with the test outputs (e.g. [pt, eta])",
    )

    @field_validator("inputs", "targets", mode="before")
    @classmethod
    def _some_keys(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)) and not value:
            raise ValueError("name at least one key (an empty list names no data)")
        if isinstance(value, str) and not value:
            raise ValueError("name a key (the text is empty)")
        return value

    @field_validator("spectators", mode="before")
    @classmethod
    def _spectator_list(cls, value: Any) -> Any:
        if isinstance(value, str):  # one name written without brackets
            return (value,)
        return value

    @model_validator(mode="after")
    def _spectators_are_new_names(self) -> _Columns:
        named = {"data.inputs": _names(self.inputs), "data.targets": _names(self.targets)}
        seen: set[str] = set()
        for name in self.spectators:
            if not name.strip():
                raise ValueError(f"spectators: an empty name in {list(self.spectators)}; name a column")
            if name in seen:
                raise ValueError(f"spectators: {name!r} is named twice in {list(self.spectators)}")
            seen.add(name)
            for field, keys in named.items():
                if name in keys:
                    raise ValueError(
                        f"spectators: {name!r} is also in {field}; a spectator is a value the model "
                        "does not see (drop it from one of the two)"
                    )
        return self


def _names(keys: Keys) -> tuple[str, ...]:
    return (keys,) if isinstance(keys, str) else tuple(keys)


class FileSpec(_Columns):
    """Events from one file: HDF5 datasets, ROOT TTree branches, ``.npz`` arrays, Parquet/CSV columns."""

    target: ClassVar[str] = "labkit.data._arrays:FileDataModule"
    name: Literal["file"]
    path: PathText = Field(min_length=1, description=".h5/.hdf5, .root, .npz, .parquet or .csv")
    format: Literal["auto", "npz", "hdf5", "root", "parquet", "csv"] = "auto"
    tree: str | None = Field(default=None, description="ROOT: the TTree (default: the file's only one)")

    def anchored(self, cwd: Path) -> FileSpec:
        return self.model_copy(update={"path": _anchor(self.path, cwd)})


class SimulatedSpec(_Columns):
    """Events from one of labkit's seeded simulators (labkit.sim), generated once and cached."""

    target: ClassVar[str] = "labkit.data._simulated:SimulatedDataModule"
    name: Literal["simulated"]
    simulator: str = Field(description="calo, grf, tracks or dijet (labkit sim --help)")
    events: int = Field(default=10000, gt=0, le=MAX_EVENTS, description="at most 10**9")
    sim_seed: Seed | None = Field(default=None, description="default: the experiment's seed")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="the simulator's options, e.g. {energy_range: [1, 100]}"
    )
    cache_dir: PathText | None = Field(
        default=None, description="default: $LABKIT_CACHE_DIR, else ~/.cache/labkit (XDG_CACHE_HOME)"
    )

    @model_validator(mode="after")
    def _known_simulator(self) -> SimulatedSpec:
        from labkit.errors import ConfigError, did_you_mean
        from labkit.sim import SIMULATORS  # numpy only

        if self.simulator not in SIMULATORS:
            names = sorted(SIMULATORS)
            raise ValueError(
                f"simulator: unknown simulator {self.simulator!r}{did_you_mean(self.simulator, names)}; "
                f"choose one of: {', '.join(names)}"
            )
        try:
            SIMULATORS[self.simulator].check_options(self.parameters)
        except ConfigError as exc:
            raise ValueError(f"parameters: {exc}") from None
        scalars = _per_event_scalars(SIMULATORS[self.simulator].arrays)
        for name in self.spectators:
            if name not in scalars:
                raise ValueError(
                    f"spectators: simulator {self.simulator!r} has no per-event value {name!r}"
                    f"{did_you_mean(name, scalars)}; choose from: {', '.join(scalars) or 'none'}"
                )
        return self

    def anchored(self, cwd: Path) -> SimulatedSpec:
        return self.model_copy(update={"cache_dir": _anchor(self.cache_dir, cwd)}) if self.cache_dir else self


def _per_event_scalars(arrays: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The names of a simulator's datasets holding one number per event (axes ``("n",)``)."""
    return tuple(name for name, axes in arrays.items() if tuple(axes) == ("n",))


DATA_SPECS: tuple[type[DataSpec], ...] = (DigitsSpec, ArraysSpec, FileSpec, SimulatedSpec)
