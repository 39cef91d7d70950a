"""Options of the registered datasets, as users write them under ``data:`` (no torch here)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ByteSize, ConfigDict, Field, field_validator, model_validator

from labkit.config._base import ComponentSpec, PathText, Seed

__all__ = [
    "DATA_SPECS",
    "MAX_CONSTITUENTS",
    "MAX_EVENTS",
    "ArraysSpec",
    "ConstituentSpec",
    "DataSpec",
    "DigitsSpec",
    "FileSpec",
    "NanPolicy",
    "SimulatedSpec",
]

#: most events a simulated dataset may ask for: labkit.sim.MAX_EVENTS (not imported: NumPy), the
#: simulators also check the memory the events need
MAX_EVENTS = 10**9
#: largest batch (2**24 events: more than fits a GPU for any real model)
MAX_BATCH = 2**24
#: most DataLoader worker processes (each is a process on the node)
MAX_WORKERS = 256
#: most constituents (tracks, particles, clusters) kept per event
MAX_CONSTITUENTS = 10_000
#: what to do with NaN/inf in an input: refuse the file, drop the event, or replace the value
NanPolicy = Literal["error", "drop", "fill"]


class DataSpec(ComponentSpec):
    """Options every dataset has: batching and the deterministic train/val/test split."""

    name: str
    batch_size: Annotated[int, Field(gt=0, le=MAX_BATCH)] = 64
    val_fraction: float = Field(default=0.15, gt=0.0, lt=1.0)
    test_fraction: float = Field(default=0.15, gt=0.0, lt=1.0)
    num_workers: int = Field(default=0, ge=0, le=MAX_WORKERS, description="DataLoader worker processes")
    on_device: Literal["auto"] | bool = Field(
        default="auto",
        description="keep the data on the accelerator and slice batches there (auto: when it fits)",
    )

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


class ConstituentSpec(BaseModel):
    """A variable-length set per event (tracks, particles, clusters) read as an (N, M, F) array.

    ``dataset`` is a compound HDF5 dataset of shape (N, M) (or a ROOT/Parquet jagged branch
    prefix), ``fields`` the features the model sees, ``valid`` the boolean field that marks real
    entries (padding is False), ``max`` the M kept (the first ``max`` entries; default: all)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field(min_length=1, description="the compound dataset holding the constituents")
    fields: tuple[str, ...] = Field(min_length=1, description="the features of each constituent")
    valid: str | None = Field(default=None, description="boolean field marking real entries")
    max: int | None = Field(default=None, gt=0, le=MAX_CONSTITUENTS, description="entries kept per event")

    @field_validator("fields", mode="before")
    @classmethod
    def _field_list(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _valid_is_not_a_feature(self) -> ConstituentSpec:
        if len(set(self.fields)) != len(self.fields):
            raise ValueError(f"fields: a field is named twice in {list(self.fields)}")
        if self.valid is not None and self.valid in self.fields:
            raise ValueError(
                f"valid: {self.valid!r} is also in fields; the valid flag becomes the mask, not a feature"
            )
        return self


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
    constituents: dict[str, ConstituentSpec] = Field(
        default_factory=dict,
        description="per-event sets, e.g. {tracks: {dataset: tracks, fields: [d0, z0], valid: valid}}",
    )
    nan: NanPolicy | dict[str, NanPolicy] = Field(
        default="error",
        description="NaN/inf in an input: error, drop the event, or fill (one policy or per input)",
    )
    fill_value: float = Field(default=0.0, description="the value nan: fill writes (finite)")
    memory_limit: ByteSize | None = Field(
        default=None,
        description="above this the data are streamed from disk (default: half the available memory)",
    )
    shuffle_buffer: int = Field(
        default=100_000, gt=0, le=MAX_EVENTS, description="events mixed at a time when streaming"
    )

    @field_validator("fill_value")
    @classmethod
    def _finite_fill(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError(f"fill_value must be a finite number, got {value}")
        return value

    @field_validator("memory_limit", mode="before")
    @classmethod
    def _positive_limit(cls, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
            raise ValueError(f"memory_limit must be positive, e.g. 8GB or 500MiB; got {value}")
        return value

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


SplitName = Literal["train", "val", "test"]


class FileSpec(_Columns):
    """Events from files: HDF5 datasets, ROOT TTree branches, ``.npz`` arrays, Parquet/CSV columns.

    ``path`` is one file, a glob pattern (``data/run_*.h5``) or a list of both; the files are read
    in sorted order as one dataset. ``splits`` uses the files' own train/val/test: each value names
    an HDF5 group inside ``path`` (``train``) or files (a path or glob). Without ``splits`` the events
    are split at random (seeded) with ``val_fraction`` and ``test_fraction``."""

    target: ClassVar[str] = "labkit.data._arrays:FileDataModule"
    name: Literal["file"]
    path: PathText | tuple[PathText, ...] = Field(
        description=".h5/.hdf5, .root, .npz, .parquet or .csv: a file, a glob, or a list of them"
    )
    format: Literal["auto", "npz", "hdf5", "root", "parquet", "csv"] = "auto"
    tree: str | None = Field(default=None, description="ROOT: the TTree (default: the file's only one)")
    splits: dict[SplitName, str | tuple[str, ...]] | None = Field(
        default=None,
        description="the files' own split: {train: train, test: test} (groups) or file paths/globs",
    )
    stage: bool | PathText = Field(
        default=False,
        description="copy the files to node-local disk first (true: $SLURM_TMPDIR or $TMPDIR, or a path)",
    )

    @field_validator("path", mode="before")
    @classmethod
    def _some_paths(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            if not value:
                raise ValueError("name at least one file (an empty list names no data)")
            return tuple(value)
        if isinstance(value, str) and not value:
            raise ValueError("name a file (the text is empty)")
        return value

    @field_validator("splits", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if value is None:
            return value
        if not isinstance(value, Mapping):
            raise ValueError("give the splits as a mapping, e.g. {train: train, test: test}")
        unknown = [k for k in value if k not in ("train", "val", "test")]
        if unknown:
            raise ValueError(f"unknown split {unknown[0]!r}; the splits are train, val and test")
        if "train" not in value:
            raise ValueError("name the training data (train: ...); val and test are optional")
        return {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}

    def anchored(self, cwd: Path) -> FileSpec:
        paths = self.path if isinstance(self.path, tuple) else (self.path,)
        anchored = tuple(_anchor(p, cwd) for p in paths)
        update: dict[str, Any] = {"path": anchored if isinstance(self.path, tuple) else anchored[0]}
        if isinstance(self.stage, str):
            update["stage"] = _anchor(self.stage, cwd)
        if self.splits:
            update["splits"] = {k: _anchor_split(v, cwd) for k, v in self.splits.items()}
        return self.model_copy(update=update)


#: suffixes that make a ``splits`` value a file name rather than an HDF5 group (labkit.data.FORMATS,
#: which config cannot import)
_FILE_SUFFIXES = (".h5", ".hdf5", ".hdf", ".root", ".parquet", ".pq", ".csv", ".npz")


def _names_files(value: str) -> bool:
    """Whether a ``splits`` value names files (a path, a glob or a file suffix), not a group."""
    return any(c in value for c in "/\\*?[") or value.lower().endswith(_FILE_SUFFIXES)


def _anchor_split(value: str | tuple[str, ...], cwd: Path) -> str | tuple[str, ...]:
    if isinstance(value, tuple):
        return tuple(_anchor(v, cwd) for v in value)
    return _anchor(value, cwd) if _names_files(value) else value


class SimulatedSpec(_Columns):
    """Events from one of labkit's seeded simulators (labkit.sim), generated once and cached."""

    target: ClassVar[str] = "labkit.data._simulated:SimulatedDataModule"
    name: Literal["simulated"]
    simulator: str = Field(description="calo, grf, tracks, dijet or jets (labkit sim --help)")
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
