"""Events larger than memory: HDF5 files read in blocks of consecutive rows (docs/large-data.md).

The events are split by blocks without being read (a seeded permutation of the blocks, or the
files' own splits); one pass (:meth:`Stream.setup`) fits the normalisation on the training
blocks (Chan's merge of per-block moments, float64), finds the classes or target scaling and
counts the events; training reads the blocks in an order drawn from ``(seed, epoch)`` through a
shuffle buffer (weakly shuffled), validation and test read them in file order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labkit.data._base import MAX_CLASSES, Arrays, ArraySplitDataModule, DataInfo
from labkit.data._blocks import (
    CHUNK_ROWS,
    MIN_BLOCKS,
    Block,
    StreamSource,
    blocks_of,
    file_checksum,
    split_blocks,
    streams,
)
from labkit.errors import DataError

__all__ = ["Stream", "StreamLoader", "StreamingDataModule"]


class _Moments:
    """Count, mean and sum of squared deviations per feature, merged block by block (Chan et al.)."""

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, np.zeros(0), np.zeros(0)

    def add(self, values: np.ndarray) -> None:
        if len(values) == 0:
            return
        v = values.reshape(len(values), -1).astype(np.float64)
        n_b, mean_b = len(v), v.mean(axis=0)
        m2_b = ((v - mean_b) ** 2).sum(axis=0)
        n = self.n + n_b
        delta = mean_b - self.mean if self.n else np.zeros_like(mean_b)
        self.mean = (self.mean if self.n else mean_b) + delta * n_b / n
        self.m2 = (self.m2 if self.n else 0) + m2_b + delta**2 * self.n * n_b / n
        self.n = n

    def scaling(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, divisor)``, float32 of ``shape``: the divisor is the std, 1 where it is 0."""
        std = np.sqrt(self.m2 / max(self.n, 1))
        return self.mean.reshape(shape).astype(np.float32), np.where(std > 0, std, 1.0).reshape(shape).astype(
            np.float32
        )


def _columns(a: Arrays) -> dict[str, np.ndarray]:
    """An Arrays as flat columns: ``x`` (or ``x:<name>`` per named input), ``y``, ``w``."""
    out = {f"x:{k}": np.asarray(v) for k, v in a.x.items()} if isinstance(a.x, Mapping) else {"x": a.x}
    out["y"] = np.asarray(a.y)
    if a.w is not None:
        out["w"] = np.asarray(a.w)
    return out


def _scaled_rows(col: dict[str, np.ndarray]) -> Iterator[tuple[str, np.ndarray]]:
    """The rows each input's scaling is fitted on: per event for a table, per real entry
    (``<name>_valid``) for constituents; masks are not scaled."""
    for k, v in col.items():
        if k.startswith("x") and v.dtype != np.bool_:
            valid = col.get(k + "_valid")
            yield k, v if valid is None else v[valid]


@dataclass
class _Fitted:
    """What the setup pass learned from the training split."""

    scaling: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    classes: np.ndarray | None = None  #: label values in class order (None: regression)
    identity: bool = False  #: labels are already 0..K-1
    target_scaling: tuple[tuple[float, float, bool], ...] = ()
    sizes: dict[str, int] = field(default_factory=dict)


class Stream:
    """Splits, fits and serves events from files that do not fit in memory; :meth:`setup` once,
    then :meth:`loader` per split."""

    def __init__(
        self,
        source: StreamSource,
        *,
        batch_size: int,
        seed: int,
        shuffle_buffer: int,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        standardize: bool = False,
        target_kind: str = "labels",
        log_targets: Sequence[str] = (),
        kept: Sequence[str] = (),
        spectators: Sequence[str] = (),
        class_names: Callable[[int], tuple[str, ...]] = lambda k: tuple(map(str, range(k))),
        chunk_rows: int = CHUNK_ROWS,
    ) -> None:
        if target_kind == "masks":
            raise DataError(
                "data.memory_limit: per-pixel masks cannot be streamed; raise data.memory_limit so "
                "that the data are loaded into memory"
            )
        self.source = source
        self.batch_size, self.seed, self.shuffle_buffer = batch_size, seed, shuffle_buffer
        self.fractions = {"test": test_fraction, "val": val_fraction}
        self.standardize, self.target_kind = standardize, target_kind
        self.log_targets, self.kept, self.spectators = tuple(log_targets), tuple(kept), tuple(spectators)
        self.class_names, self.chunk_rows = class_names, chunk_rows
        self.splits: dict[str, list[Block]] = {}
        self.fitted = _Fitted()
        self.info: DataInfo | None = None
        self._offsets: list[int] = []

    def plan(self) -> dict[str, list[Block]]:
        """The blocks of each split, from the files' headers (no event is read)."""
        src = self.source
        counts = [src.layout(p, src.keys[:1])[0] for p in src.parts]
        self._offsets = [0, *np.cumsum(counts).tolist()[:-1]]
        if src.splits is None:
            rows = max(1, min(self.chunk_rows, sum(counts) // MIN_BLOCKS))
            return split_blocks(blocks_of(counts, rows), self.fractions, self.seed)
        given = {
            n: blocks_of([counts[i] for i in ids], self.chunk_rows, ids) for n, ids in src.splits.items()
        }
        for name in ("test", "val"):  # not in the files: drawn from the train blocks, seeded
            if name not in given:
                train = given.pop("train")
                rows = max(1, min(self.chunk_rows, sum(b.rows for b in train) // MIN_BLOCKS))
                finer = [
                    Block(b.part, s, min(s + rows, b.stop))
                    for b in train
                    for s in range(b.start, b.stop, rows)
                ]
                given |= split_blocks(finer, {name: self.fractions[name]}, self.seed)
        return given

    def read(self, block: Block) -> Arrays:
        src = self.source
        if src.rows is not None:
            return src.rows(block.part, block.start, block.stop)
        part = src.parts[block.part]
        raw = src.read(part, src.keys, block.start, block.stop)
        assert src.assemble is not None, "a StreamSource needs rows, or read and assemble"
        return src.assemble(raw, f"{part.path} (rows {block.start}:{block.stop})")

    def setup(self) -> DataInfo:
        """Plan the splits, then one pass: fit on train, count every split, keep test extras."""
        if self.info is not None:
            return self.info
        self.splits = self.plan()
        if not self.splits.get("train"):
            raise DataError(f"{self.source.parts[0].path}: the split leaves no training data")
        moments: dict[str, _Moments] = {}
        targets, values, first = _Moments(), set[int](), None
        sizes, positive = dict.fromkeys(self.splits, 0), dict.fromkeys(self.splits, False)
        extras: dict[str, list[np.ndarray]] = {k: [] for k in self.kept}
        for name, blocks in self.splits.items():
            for block in blocks:
                a = self.read(block)
                first = first or a
                sizes[name] += len(a.y)
                positive[name] |= a.w is not None and bool(np.any(a.w > 0))
                for k in self.kept if name == "test" else ():
                    if k not in a.extras:
                        raise DataError(f"{a.source}: no array {k!r} (data.spectators or the task's)")
                    extras[k].append(np.asarray(a.extras[k]))
                if name != "train":
                    continue
                for k, rows in _scaled_rows(_columns(a)) if self.standardize else ():
                    moments.setdefault(k, _Moments()).add(rows)
                if self.target_kind == "values":
                    targets.add(self._log(a))
                    continue
                values |= set(np.unique(_labels(a)).tolist())
                if len(values) > MAX_CLASSES and not a.labels:
                    raise DataError(
                        f"{a.source}: the targets hold more than {MAX_CLASSES} distinct labels; is it an "
                        "id column rather than a class label? Name the target that holds the classes, "
                        "or give data.labels"
                    )
        assert first is not None
        for name, seen in positive.items():
            if first.w is not None and not seen:
                raise DataError(f"{first.source}: every event weight in the {name} split is zero")
        col = _columns(first)
        self.fitted.scaling = {
            k: m.scaling(col[k].shape[1:] if k + "_valid" not in col else col[k].shape[2:])
            for k, m in moments.items()
        }
        self._fit_targets(first, targets, values)
        self.fitted.sizes = sizes
        return self._info(first, sizes, {k: np.concatenate(v) for k, v in extras.items() if v})

    def _log(self, a: Arrays) -> np.ndarray:
        y = np.asarray(a.y, dtype=np.float64).reshape(len(a.y), -1)
        for i, name in enumerate(a.target_names or tuple(f"y{i}" for i in range(y.shape[1]))):
            if name in self.log_targets:
                if np.any(y[:, i] <= 0):
                    raise DataError(
                        f"{a.source}: target {name!r} has values <= 0 and cannot be regressed in log"
                    )
                y[:, i] = np.log(y[:, i])
        return y

    def _fit_targets(self, first: Arrays, targets: _Moments, values: set[int]) -> None:
        fitted = self.fitted
        if self.target_kind == "values":
            names = first.target_names or tuple(f"y{i}" for i in range(len(targets.mean)))
            mean, std = targets.scaling((len(names),))
            fitted.target_scaling = tuple(
                (float(mean[i]), float(std[i]), name in self.log_targets) for i, name in enumerate(names)
            )
        elif first.labels:
            unknown = sorted(values - set(first.labels))
            if unknown:
                raise DataError(f"{first.source}: labels {unknown[:10]} are not in data.labels")
            fitted.classes = np.array(sorted(first.labels), dtype=np.int64)
        else:
            found = np.array(sorted(values), dtype=np.int64)
            fitted.identity = bool(found[0] == 0 and found[-1] < MAX_CLASSES)
            fitted.classes = np.arange(int(found[-1]) + 1) if fitted.identity else found

    def _info(self, first: Arrays, sizes: dict[str, int], extras: dict[str, np.ndarray]) -> DataInfo:
        fitted, x = self.fitted, first.x
        shapes = {k: tuple(np.asarray(v).shape[1:]) for k, v in x.items()} if isinstance(x, Mapping) else {}
        in_shape = shapes.get("features", ()) if isinstance(x, Mapping) else tuple(np.asarray(x).shape[1:])
        labels: dict[str, Any] = {"target_names": first.target_names, "target_scaling": fitted.target_scaling}
        if fitted.classes is not None:
            if first.labels:
                names = tuple(first.labels[int(v)] for v in fitted.classes)
            else:
                k = len(fitted.classes)
                names = self.class_names(k) if fitted.identity else tuple(map(str, fitted.classes.tolist()))
            labels = {"num_classes": len(names), "class_names": names}
        self.info = DataInfo(
            in_shape=in_shape,
            sizes=sizes,
            checksum=file_checksum(list(dict.fromkeys(p.path for p in self.source.parts))),
            weighted=first.w is not None,
            input_names=tuple(first.input_names),
            extras=extras,
            spectators=self.spectators,
            input_shapes=shapes,
            constituents={k: tuple(v) for k, v in first.constituents.items()},
            **labels,
        )
        return self.info

    def prepared(self, block: Block) -> dict[str, np.ndarray]:
        """A block's events as the model sees them: scaled inputs, class indices or scaled values."""
        a = self.read(block)
        col = _columns(a)
        for k, v in list(col.items()):
            if not k.startswith("x") or v.dtype == np.bool_:
                continue
            f = v.astype(np.float32, copy=False)
            if k in self.fitted.scaling:
                mean, divisor = self.fitted.scaling[k]
                valid = col.get(k + "_valid")
                f = (f - mean) / divisor
                f = f if valid is None else np.where(valid[..., None], f, np.float32(0))
            col[k] = f.astype(np.float32, copy=False)
        if self.fitted.classes is None:
            y = self._log(a)
            for i, (mu, sd, _) in enumerate(self.fitted.target_scaling):
                y[:, i] = (y[:, i] - mu) / sd
            col["y"] = y.astype(np.float32)
        else:
            col["y"] = self._classes(_labels(a), a.source)
        if "w" in col:
            col["w"] = col["w"].astype(np.float32)
        return col

    def _classes(self, y: np.ndarray, where: str) -> np.ndarray:
        classes = self.fitted.classes
        assert classes is not None
        index = np.searchsorted(classes, y).clip(0, len(classes) - 1)
        bad = classes[index] != y
        if bad.any():
            i = int(np.argwhere(bad)[0][0])
            raise DataError(
                f"{where}: label {int(y[i])} (row {i} of these) is not among the training split's "
                f"classes {classes.tolist()[:10]}"
            )
        return index.astype(np.int64)

    def loader(self, split: str) -> StreamLoader:
        self.setup()
        if split not in self.splits:
            raise DataError(f"no split {split!r}; the splits are: {', '.join(self.splits)}")
        return StreamLoader(self, split, shuffle=split == "train")

    def split_indices(self, split: str) -> np.ndarray:
        """The rows of ``split``, numbered through all parts one after the other, in the order of
        the val/test loaders (train's order changes every epoch)."""
        self.setup()
        return np.concatenate(
            [np.arange(b.start, b.stop) + self._offsets[b.part] for b in self.splits[split]]
        )


def _labels(a: Arrays) -> np.ndarray:
    y = np.asarray(a.y)
    y = y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1:
        raise DataError(f"{a.source}: class labels must have shape (N,), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) and (
        not np.issubdtype(y.dtype, np.number) or np.any(y != np.round(y))
    ):
        raise DataError(f"{a.source}: labels must be integers for classification, got dtype {y.dtype}")
    return y.astype(np.int64)


class StreamLoader:
    """The batches of one split as tensors ``(x, y)`` or ``(x, y, w)``: a plain iterable with a
    length, which Lightning takes as a dataloader. Lightning calls ``sampler.set_epoch`` at each
    epoch start, which picks the training order; without it each pass counts one epoch on."""

    def __init__(self, stream: Stream, split: str, shuffle: bool) -> None:
        self.stream, self.split, self.shuffle = stream, split, shuffle
        self.epoch = 0
        self.sampler = self  # Lightning's loops call dataloader.sampler.set_epoch(epoch)
        self.batch_sampler = None  # (Lightning looks for one on every loader)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return (self.stream.fitted.sizes[self.split] + self.stream.batch_size - 1) // self.stream.batch_size

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        # the epoch is read at the first batch, not here: Lightning makes an iterator before it
        # calls set_epoch (and one it never reads, to check the loader)
        epoch, self.epoch = self.epoch, self.epoch + 1
        yield from (_tensors(b) for b in self.batches(epoch))

    def batches(self, epoch: int) -> Iterator[dict[str, np.ndarray]]:
        """The batches of ``epoch`` as numpy columns: for training, blocks in a random order mixed
        in the shuffle buffer (half of it is kept for the next blocks); else in file order. The
        buffer is allocated once (``shuffle_buffer`` + one block) and batches are gathered from it."""
        s = self.stream
        blocks, rng = s.splits[self.split], np.random.default_rng([s.seed, epoch])
        if self.shuffle:
            blocks = [blocks[i] for i in rng.permutation(len(blocks))]
        size = s.batch_size
        keep = s.shuffle_buffer // 2 if self.shuffle else 0
        full = max(s.shuffle_buffer, keep + size) if self.shuffle else size
        cap = full + max((b.rows for b in blocks), default=0)
        buf: dict[str, np.ndarray] = {}
        count = 0
        for i, block in enumerate(blocks):
            col = s.prepared(block)
            n = len(col["y"])
            for k, v in col.items():
                if k not in buf:
                    buf[k] = np.empty((cap, *v.shape[1:]), dtype=v.dtype)
                buf[k][count : count + n] = v
            count += n
            last = i == len(blocks) - 1
            if count < full and not last:
                continue
            order = rng.permutation(count) if self.shuffle else np.arange(count)
            emit = count if last else (count - keep) // size * size
            for start in range(0, emit, size):
                rows = order[start : start + size]
                yield {k: v[rows] for k, v in buf.items()}
            rest = order[emit:]
            for v in buf.values():
                v[: len(rest)] = v[rest]
            count = len(rest)


def _tensors(batch: dict[str, np.ndarray]) -> tuple[Any, ...]:
    import torch

    named = {k[2:]: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items() if k.startswith("x:")}
    x = named or torch.from_numpy(np.ascontiguousarray(batch["x"]))
    y = torch.from_numpy(np.ascontiguousarray(batch["y"]))
    return (x, y) if "w" not in batch else (x, y, torch.from_numpy(np.ascontiguousarray(batch["w"])))


class StreamingDataModule(ArraySplitDataModule):
    """An :class:`ArraySplitDataModule` that streams when :meth:`stream_source` names files whose
    arrays exceed ``memory_limit`` (None: half the memory available at setup); else it loads
    them as usual. Subclasses implement :meth:`stream_source` (None: never stream)."""

    def __init__(
        self, *, memory_limit: int | None = None, shuffle_buffer: int = 100_000, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.memory_limit, self.shuffle_buffer = memory_limit, shuffle_buffer
        self.stream: Stream | None = None
        self._decided = False

    def stream_source(self) -> StreamSource | None:
        return None

    def streaming(self) -> Stream | None:
        """The stream when the data are streamed (decided once, from the files' headers)."""
        if not self._decided:
            src = self.stream_source()
            if src is not None and streams(src.nbytes(), self.memory_limit):
                self.stream = Stream(
                    src,
                    batch_size=self.batch_size,
                    seed=self.seed,
                    shuffle_buffer=self.shuffle_buffer,
                    val_fraction=self.val_fraction,
                    test_fraction=self.test_fraction,
                    standardize=self.standardize,
                    target_kind=self.target_kind,
                    log_targets=self.log_targets,
                    kept=tuple(dict.fromkeys(self.extras + self.spectators)),
                    spectators=self.spectators,
                    class_names=self.class_names,
                )
            self._decided = True
        return self.stream

    def setup(self, stage: str | None = None) -> None:
        stream = self.streaming()
        if stream is None:
            super().setup(stage)
            return
        self._info = stream.setup()
        scaling = stream.fitted.scaling
        self.input_scaling = scaling.get("x:features", scaling.get("x"))
        self.input_scalings = {k[2:]: v for k, v in scaling.items() if k.startswith("x:")}

    def train_dataloader(self) -> Any:
        stream = self.streaming()
        if stream is None:
            return super().train_dataloader()
        world = getattr(getattr(self, "trainer", None), "world_size", 1)
        if world > 1:
            raise DataError(
                f"data.memory_limit: the data are streamed (larger than the limit), and streamed data "
                f"cannot yet be shared among {world} processes; train on one device, or raise "
                "data.memory_limit so that they are loaded into memory"
            )
        return stream.loader("train")

    def val_dataloader(self) -> Any:
        stream = self.streaming()
        return super().val_dataloader() if stream is None else stream.loader("val")

    def test_dataloader(self) -> Any:
        stream = self.streaming()
        return super().test_dataloader() if stream is None else stream.loader("test")

    def split_indices(self, split: str) -> np.ndarray:
        stream = self.streaming()
        return super().split_indices(split) if stream is None else stream.split_indices(split)
