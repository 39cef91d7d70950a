"""The DataModule every labkit dataset builds on: check, split, normalise, serve."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader

from labkit.config import MAX_CLASSES
from labkit.data._files import listing
from labkit.data._inputs import checksum, finite, moments, named_inputs, real, scale_inputs
from labkit.data._loader import BatchLoader, Inputs, TensorSplit, batch_loader, nbytes, take, to_device
from labkit.errors import DataError

__all__ = ["MAX_CLASSES", "SPLIT_CODES", "ArraySplitDataModule", "Arrays", "DataInfo"]


@dataclass(frozen=True)
class Arrays:
    """What a data module loads: inputs ``x`` (N, ...), targets ``y`` ((N,) labels or (N, T)
    values), optional event weights ``w`` (N,), and names for the targets or classes."""

    #: an array (N, ...), or named arrays for models that read several inputs: ``"features"``
    #: (N, F) per-event features, and per constituent set ``g`` (``data.constituents``): ``g``
    #: (N, M, F_g) float and ``g + "_valid"`` (N, M) bool (False marks padding)
    x: np.ndarray | Mapping[str, np.ndarray]
    y: np.ndarray
    w: np.ndarray | None = None
    target_names: tuple[str, ...] = ()
    labels: Mapping[int, str] = field(default_factory=dict)  #: label value → class name
    source: str = "data"  #: how error messages name the file (and keys)
    #: names of the input columns, when the inputs are a table (N, F)
    input_names: tuple[str, ...] = ()
    #: per-event arrays a task asked for besides inputs and targets (e.g. an exact likelihood ratio),
    #: and the spectators (``data.spectators``: values the model does not see), one (N,) array each
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)
    #: the files' own split (``data.splits``), one code per event: 0 train, 1 val, 2 test;
    #: None: split at random with the fractions
    split: np.ndarray | None = None
    #: per constituent set: the names of its features (``data.constituents[g].fields``)
    constituents: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


#: codes of :attr:`Arrays.split`
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}

#: the inputs as checked: one array, or named arrays
_X = np.ndarray | dict[str, np.ndarray]

#: ``on_device: auto`` places the data on the accelerator when it takes at most this share of
#: the accelerator's free memory
DEVICE_SHARE = 0.25


@dataclass(frozen=True)
class DataInfo:
    """What a model and a task need to know about the data before they are built."""

    in_shape: tuple[int, ...]
    num_classes: int | None = None
    class_names: tuple[str, ...] = ()
    sizes: dict[str, int] = field(default_factory=dict)
    target_names: tuple[str, ...] = ()
    #: per target: (mean, std, log) of the normalisation fitted on the training split
    target_scaling: tuple[tuple[float, float, bool], ...] = ()
    checksum: str = ""  #: sha256 of the arrays as loaded (before splitting and normalising)
    weighted: bool = False
    #: figures the data can say about the test split (e.g. a Cramér–Rao bound), logged with the run
    reference_metrics: dict[str, float] = field(default_factory=dict)
    #: names of the input columns when the inputs are a table (N, F), else empty
    input_names: tuple[str, ...] = ()
    #: the extra per-event arrays the task asked for (``Task.extras``), for the test split in
    #: the order of the test loader
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    #: which of ``extras`` are spectators (``data.spectators``), written with the test outputs
    spectators: tuple[str, ...] = ()
    #: for events from labkit.sim: the simulator's name and its options (a surrogate of the
    #: simulator writes its files in the same layout and times it)
    simulator: str | None = None
    simulator_options: dict[str, object] = field(default_factory=dict)
    #: when the inputs are named arrays (:attr:`Arrays.x` a mapping): the shape of one event's
    #: entry for each name (``{"features": (5,), "tracks": (40, 4), "tracks_valid": (40,)}``);
    #: ``in_shape`` is then the shape of ``"features"`` (``()`` when there are none)
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    #: per constituent set: the names of its features
    constituents: dict[str, tuple[str, ...]] = field(default_factory=dict)


class ArraySplitDataModule(pl.LightningDataModule):
    """Holds the data in memory and splits it deterministically.

    Subclasses implement :meth:`load`. The split is a permutation drawn from ``seed``, so the
    same seed always gives the same train/val/test samples. Normalisation is fitted on the
    training split only: inputs with ``standardize``, and regression targets always (after a
    log for the targets in ``log_targets``), so that the model sees numbers of order one.

    ``target_kind`` is what the task needs: integer class ``labels`` (N,), real ``values``, or
    per-pixel class labels (``masks``, shape (N, ...) matching the inputs' trailing axes).
    ``extras`` names per-event arrays the task needs for the test split (:attr:`DataInfo.extras`);
    ``spectators`` per-event values the model does not see, kept for the test outputs (they reach
    :attr:`DataInfo.extras` the same way, named in :attr:`DataInfo.spectators`). :meth:`load`
    puts both in :attr:`Arrays.extras`.

    The loaders serve batches by index (:mod:`labkit.data._loader`): each epoch is a permutation
    drawn from ``seed`` and the epoch number. ``on_device``: ``True`` places the splits on the
    trainer's accelerator once and slices batches there, ``"auto"`` does so when they take at most
    a quarter of its free memory, ``False`` keeps them in host memory.
    """

    source = "data"  #: how error messages name where the data came from

    def __init__(
        self,
        *,
        batch_size: int = 64,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        num_workers: int = 0,
        seed: int = 0,
        standardize: bool = False,
        target_kind: str = "labels",
        log_targets: Sequence[str] = (),
        extras: Sequence[str] = (),
        spectators: Sequence[str] = (),
        on_device: Literal["auto"] | bool = "auto",
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.num_workers = num_workers
        self.seed = seed
        self.standardize = standardize
        self.target_kind = target_kind
        self.log_targets = tuple(log_targets)
        self.extras = tuple(extras)
        self.spectators = tuple(spectators)
        self.on_device = on_device
        self._splits: dict[str, TensorSplit] = {}
        self._placed: dict[str, TensorSplit] = {}  # the splits on the accelerator (on_device)
        self._parts: dict[str, np.ndarray] = {}
        self._info: DataInfo | None = None
        #: the input standardisation fitted on the training split, ``(mean, divisor)`` with the
        #: shape of one sample (float32); None when ``standardize`` is off
        self.input_scaling: tuple[np.ndarray, np.ndarray] | None = None
        #: when the inputs are named arrays: the same per name (``"features"`` is also
        #: ``input_scaling``); constituents are scaled per feature, masks not at all
        self.input_scalings: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    # -- to implement ----------------------------------------------------------------------
    def load(self) -> Arrays | tuple[np.ndarray, np.ndarray]:
        """All samples: an :class:`Arrays`, or ``(x, y)`` with integer labels ``y``."""
        raise NotImplementedError

    def class_names(self, num_classes: int) -> tuple[str, ...]:
        return tuple(str(i) for i in range(num_classes))

    def reference_metrics(self, test: np.ndarray) -> dict[str, float]:
        """Figures of merit the data itself knows for the samples ``test`` (indices)."""
        return {}

    def provenance(self) -> tuple[str | None, dict[str, object]]:
        """The simulator that made the data and its options (``(None, {})`` for files)."""
        return None, {}

    # -- Lightning ---------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self._splits:
            return  # idempotent: labkit sets up once before building the model
        loaded = self.load()
        arrays = loaded if isinstance(loaded, Arrays) else Arrays(*loaded, source=self.source)
        x, w = self._check_inputs(arrays)
        n = len(arrays.y)
        digest = checksum(arrays)
        parts = self._split(arrays, n)
        if w is not None:
            for name, idx in parts.items():
                if not np.any(w[idx] > 0):
                    raise DataError(f"{arrays.source}: every event weight in the {name} split is zero")
        if self.standardize:
            x = self._standardize(x, parts["train"])
        info: dict[str, object] = {}
        if self.target_kind == "values":
            y, scaling = self._values(arrays, parts["train"])
            info |= {"target_names": arrays.target_names, "target_scaling": scaling}
            yt = torch.from_numpy(y)
        else:
            labels, names = self._masks(arrays) if self.target_kind == "masks" else self._labels(arrays)
            info |= {"num_classes": len(names), "class_names": names}
            yt = torch.from_numpy(labels)
        missing = [k for k in self.extras if k not in arrays.extras]
        if missing:
            raise DataError(f"{arrays.source}: no array {missing[0]!r}, which the task needs for its metrics")
        missing = [k for k in self.spectators if k not in arrays.extras]
        if missing:
            raise DataError(f"{arrays.source}: no spectator {missing[0]!r} (data.spectators) was loaded")
        kept = tuple(dict.fromkeys(self.extras + self.spectators))
        xt: Inputs
        if isinstance(x, dict):
            xt = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in x.items()}
            shapes = {k: tuple(v.shape[1:]) for k, v in x.items()}
            in_shape = shapes.get("features", ())
        else:
            xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            shapes, in_shape = {}, tuple(x.shape[1:])
        tensors = (xt, yt) if w is None else (xt, yt, torch.from_numpy(w.astype(np.float32)))
        self._splits = {k: TensorSplit(take(tensors, torch.from_numpy(idx))) for k, idx in parts.items()}
        self._parts = parts
        simulator, simulator_options = self.provenance()
        self._info = DataInfo(
            in_shape=in_shape,
            sizes={k: len(v) for k, v in parts.items()},
            checksum=digest,
            weighted=w is not None,
            reference_metrics=self.reference_metrics(parts["test"]),
            input_names=tuple(arrays.input_names),
            extras={k: np.asarray(arrays.extras[k])[parts["test"]] for k in kept},
            spectators=self.spectators,
            simulator=simulator,
            simulator_options=simulator_options,
            input_shapes=shapes,
            constituents={g: tuple(f) for g, f in arrays.constituents.items()},
            **info,  # type: ignore[arg-type]
        )

    def _split(self, arrays: Arrays, n: int) -> dict[str, np.ndarray]:
        """Row indices of each split: the files' own split (:attr:`Arrays.split`; a split the
        files do not give is drawn from their train events), else a seeded permutation cut by the
        fractions. Train comes in a seeded order, val and test in the files' order."""
        rng = np.random.default_rng(self.seed)
        if arrays.split is None:
            order = rng.permutation(n)
            n_test = max(1, round(self.test_fraction * n))
            n_val = max(1, round(self.val_fraction * n))
            parts = {
                "test": order[:n_test],
                "val": order[n_test : n_test + n_val],
                "train": order[n_test + n_val :],
            }
            if len(parts["train"]) == 0:
                raise DataError(f"{arrays.source}: {n} samples leave no training data after the split")
            return parts
        codes = np.asarray(arrays.split)
        if codes.shape != (n,):
            raise DataError(f"{arrays.source}: the split codes have shape {codes.shape}, expected ({n},)")
        given = {name: np.flatnonzero(codes == code) for name, code in SPLIT_CODES.items()}
        train = given["train"][rng.permutation(len(given["train"]))]
        for name, fraction in (("test", self.test_fraction), ("val", self.val_fraction)):
            if len(given[name]) == 0:  # not in the files: drawn from their train events
                k = max(1, round(fraction * len(train))) if len(train) else 0
                given[name], train = np.sort(train[:k]), train[k:]
        if len(train) == 0:
            raise DataError(f"data.splits: {arrays.source} leaves no events for the train split")
        return {"test": given["test"], "val": given["val"], "train": train}

    def _standardize(self, x: _X, train: np.ndarray) -> _X:
        """``x`` standardised with the mean and standard deviation of the train events: per input
        column, and for constituents per feature over the real (not padding) entries; padding
        stays 0 and masks are left as they are."""
        if not isinstance(x, dict):
            mean, divisor = moments(x[train])
            self.input_scaling = (mean, divisor)
            scaled: np.ndarray = (x - mean) / divisor
            return scaled
        for name, values in x.items():
            if values.dtype != np.bool_:
                valid = x.get(name + "_valid")
                self.input_scalings[name] = moments(
                    values[train] if valid is None else values[train][valid[train]]
                )
        self.input_scaling = self.input_scalings.get("features")
        return scale_inputs(x, self.input_scalings)

    @property
    def info(self) -> DataInfo:
        self.setup()
        assert self._info is not None
        return self._info

    def split_indices(self, split: str) -> np.ndarray:
        """The events of ``split`` (``train``, ``val`` or ``test``) as row indices of the loaded
        arrays, in the order its (unshuffled) loader serves them."""
        self.setup()
        if split not in self._parts:
            raise DataError(f"no split {split!r}; the splits are: {', '.join(self._parts)}")
        return self._parts[split]

    def _loader(self, split: str, shuffle: bool) -> BatchLoader | DataLoader[Any]:
        self.setup()
        trainer = getattr(self, "trainer", None)
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        return batch_loader(
            self._device_split(split, trainer),
            batch_size=self.batch_size,
            shuffle=shuffle,
            seed=self.seed,
            num_workers=self.num_workers,
            rank=rank,
            world_size=world,
        )

    def _device_split(self, split: str, trainer: Any) -> TensorSplit:
        """``split`` on the trainer's accelerator when ``on_device`` says so (moved once)."""
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        if self.on_device is False or device.type not in ("cuda", "mps"):
            return self._splits[split]
        if split in self._placed:
            return self._placed[split]
        if self.on_device == "auto":
            total = sum(nbytes(s.tensors) for s in self._splits.values())
            if device.type == "cuda":
                free = torch.cuda.mem_get_info(device)[0]
            else:
                free = torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory()
            if total > DEVICE_SHARE * free:
                return self._splits[split]
        self._placed = {k: TensorSplit(to_device(v.tensors, device)) for k, v in self._splits.items()}
        return self._placed[split]

    def train_dataloader(self) -> BatchLoader | DataLoader[Any]:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> BatchLoader | DataLoader[Any]:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> BatchLoader | DataLoader[Any]:
        return self._loader("test", shuffle=False)

    # -- checks ------------------------------------------------------------------------------
    def _check_inputs(self, a: Arrays) -> tuple[_X, np.ndarray | None]:
        src, y, w = a.source, a.y, a.w
        x = a.x
        if isinstance(x, Mapping):
            checked = named_inputs(x, len(y), src)
        else:
            if x.ndim < 2:
                raise DataError(
                    f"{src}: inputs must have shape (N, ...) with one row per sample, got {x.shape}"
                )
            if len(x) != len(y):
                raise DataError(f"{src}: {len(x)} input samples but {len(y)} targets")
        if len(y) < 3:
            raise DataError(f"{src}: {len(y)} samples are too few to split into train/val/test")
        if not isinstance(x, Mapping):
            real(x, f"{src}: inputs")
            finite(x, f"{src}: inputs")
        if w is not None:
            if w.shape != (len(y),):
                raise DataError(f"{src}: event weights must have shape ({len(y)},), got {w.shape}")
            finite(w, f"{src}: event weights")
            if np.any(w < 0):
                raise DataError(f"{src}: {int(np.sum(w < 0))} event weights are negative")
        if isinstance(x, Mapping):
            return checked, w
        return x.astype(np.float32, copy=False), w

    def _labels(self, a: Arrays) -> tuple[np.ndarray, tuple[str, ...]]:
        src, y = a.source, a.y
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise DataError(f"{src}: class labels must have shape (N,), got {y.shape}")
        y = _integers(y, f"{src}: labels must be integers for classification")
        values = np.unique(y)
        what = _target_field(a)
        if a.labels:
            _check_class_count(len(a.labels), "data.labels names", src)
            unknown = sorted(set(values.tolist()) - set(a.labels))
            if unknown:
                shown = unknown[:10] + (["..."] if len(unknown) > 10 else [])
                raise DataError(f"{src}: labels {shown} are not in data.labels ({_shown(a.labels)})")
            order = np.array(sorted(a.labels), dtype=np.int64)
            return np.searchsorted(order, y).astype(np.int64), tuple(a.labels[int(v)] for v in order)
        if len(values) > MAX_CLASSES or (len(values) > 2 and 2 * len(values) > len(y) > 20):
            raise DataError(
                f"{src}: {what} holds {len(values)} distinct labels in {len(y)} events "
                f"(at most {MAX_CLASSES} classes, each with a few events); is it an id column rather "
                "than a class label? Name the target that holds the classes, or give data.labels"
            )
        if values[0] == 0 and values[-1] < MAX_CLASSES:
            k = int(values[-1]) + 1  # 0..K-1 (some may be absent from a small file)
            return y, self.class_names(k)
        # e.g. PDG ids 11 and 211, or {0, 10**9}: the distinct values in increasing order are the
        # classes 0..K-1, named by their value
        return np.searchsorted(values, y).astype(np.int64), tuple(map(str, values.tolist()))

    def _masks(self, a: Arrays) -> tuple[np.ndarray, tuple[str, ...]]:
        """Per-pixel class labels, one mask per sample with the inputs' trailing shape."""
        src, y = a.source, a.y
        if isinstance(a.x, Mapping):
            raise DataError(
                f"{src}: segmentation needs one input array, not named inputs ({listing(list(a.x))})"
            )
        if y.ndim < 2 or y.shape[1:] != a.x.shape[a.x.ndim - (y.ndim - 1) :]:
            raise DataError(
                f"{src}: segmentation needs one label per pixel: labels of shape (N, ...) matching the "
                f"inputs {a.x.shape}, got {y.shape}"
            )
        labels = _integers(y, f"{src}: pixel labels must be integers")
        if labels.min() < 0:
            raise DataError(f"{src}: pixel labels must be >= 0, found {int(labels.min())}")
        if a.labels:
            _check_class_count(len(a.labels), "data.labels names", src)
            unknown = sorted(set(np.unique(labels).tolist()) - set(a.labels))
            if unknown:
                shown = unknown[:10] + (["..."] if len(unknown) > 10 else [])
                raise DataError(f"{src}: pixel labels {shown} are not in data.labels ({_shown(a.labels)})")
            k = max(a.labels) + 1
            if sorted(a.labels) != list(range(k)):
                shown = sorted(a.labels)[:10] + (["..."] if len(a.labels) > 10 else [])
                raise DataError(f"data.labels: pixel classes must be numbered 0..K-1, got {shown}")
            return labels, tuple(a.labels[i] for i in range(k))
        top = int(labels.max())
        if top >= MAX_CLASSES:
            raise DataError(
                f"{src}: pixel labels are class numbers 0..K-1 with K <= {MAX_CLASSES}, found {top} in "
                f"{_target_field(a)}; is it the right array?"
            )
        return labels, self.class_names(top + 1)

    def _values(
        self, a: Arrays, train: np.ndarray
    ) -> tuple[np.ndarray, tuple[tuple[float, float, bool], ...]]:
        src, y = a.source, a.y
        if y.ndim == 1:
            y = y[:, None]
        if y.ndim != 2:
            raise DataError(f"{src}: regression targets must have shape (N,) or (N, T), got {a.y.shape}")
        names = a.target_names or tuple(f"y{i}" for i in range(y.shape[1]))
        if len(names) != y.shape[1]:
            raise DataError(f"{src}: {y.shape[1]} target columns but {len(names)} target names")
        if not np.issubdtype(y.dtype, np.number):
            raise DataError(f"{src}: regression targets must be numbers, got dtype {y.dtype}")
        y = y.astype(np.float64)
        finite(y, f"{src}: targets")
        unknown = [t for t in self.log_targets if t not in names]
        if unknown:
            raise DataError(f"data.log_targets: no target {unknown[0]!r}; the targets are: {listing(names)}")
        scaling = []
        for i, name in enumerate(names):
            log = name in self.log_targets
            if log:
                if np.any(y[:, i] <= 0):
                    raise DataError(f"{src}: target {name!r} has values <= 0 and cannot be regressed in log")
                y[:, i] = np.log(y[:, i])
            mean, std = float(y[train, i].mean()), float(y[train, i].std())
            std = std if std > 0 else 1.0
            y[:, i] = (y[:, i] - mean) / std
            scaling.append((mean, std, log))
        return y.astype(np.float32), tuple(scaling)


def _integers(y: np.ndarray, message: str) -> np.ndarray:
    """``y`` as int64, else :class:`DataError` ``message`` (fractions, NaN/inf, or beyond int64)."""
    if np.issubdtype(y.dtype, np.integer):
        if y.dtype == np.uint64 and y.size and int(y.max()) >= 2**63:
            raise DataError(f"{message} below 2**63, found {int(y.max())}")
        return y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.complexfloating):
        raise DataError(f"{message}, got dtype {y.dtype}")
    bad = ~np.isfinite(y) | (y != np.round(y)) | (np.abs(y) >= 2.0**63)
    if bad.any():
        raise DataError(f"{message}, got dtype {y.dtype} with values such as {float(y[bad].flat[0])!r}")
    return y.astype(np.int64)


def _target_field(a: Arrays) -> str:
    """How messages name the array holding the class labels: ``target 'key'``, or ``the targets``."""
    return f"target {a.target_names[0]!r}" if len(a.target_names) == 1 else "the targets"


def _shown(labels: Mapping[int, str], most: int = 10) -> str:
    """``data.labels`` for a message: its first ``most`` entries."""
    items = list(labels.items())
    text = ", ".join(f"{k}: {v!r}" for k, v in items[:most])
    return "{" + text + (", ..." if len(items) > most else "") + "}"


def _check_class_count(k: int, what: str, src: str) -> None:
    if k > MAX_CLASSES:
        raise DataError(f"{src}: {what} {k} classes; labkit classifies into at most {MAX_CLASSES}")
