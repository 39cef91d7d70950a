"""Streaming events from files larger than data.memory_limit: splits, statistics, batches."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from labkit.data._arrays import FileDataModule
from labkit.data._base import Arrays
from labkit.data._blocks import (
    Block,
    Part,
    StreamSource,
    blocks_of,
    file_checksum,
    files_reader,
    split_blocks,
    streams,
)
from labkit.data._stream import Stream, StreamingDataModule
from labkit.errors import DataError

N = 1000


def _write(path: Path, n: int = N, seed: int = 0, group: str = "") -> Path:
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=3.0, scale=2.0, size=(n, 4))
    x[:, 0] = np.arange(n)  # the event's own number: which events a batch holds
    with h5py.File(path, "a") as f:
        f[f"{group}x"] = x
        f[f"{group}y"] = rng.integers(0, 3, n)
        f[f"{group}w"] = rng.uniform(0.5, 1.5, n)
    return path


def _assemble(raw: Mapping[str, np.ndarray], where: str) -> Arrays:
    return Arrays(x=raw["x"], y=raw["y"], w=raw.get("w"), source=where, target_names=("y",))


def _source(*paths: Path, keys: tuple[str, ...] = ("x", "y"), **kwargs: Any) -> StreamSource:
    return StreamSource(parts=tuple(Part(p) for p in paths), keys=keys, assemble=_assemble, **kwargs)


def _stream(path: Path, **kwargs: Any) -> Stream:
    options: dict[str, Any] = {"batch_size": 16, "seed": 0, "shuffle_buffer": 64, "chunk_rows": 50}
    return Stream(_source(path), **(options | kwargs))


def _ids(stream: Stream, split: str, epoch: int = 0) -> np.ndarray:
    loader = stream.loader(split)
    loader.set_epoch(epoch)
    return np.concatenate([x[:, 0].numpy() for x, _ in loader]).astype(np.int64)


def test_decision_follows_the_limit() -> None:
    assert streams(10_001, 10_000)
    assert not streams(10_000, 10_000)
    assert streams(600, None, available=1000)  # default: half the available memory
    assert not streams(400, None, available=1000)


def test_blocks_split_without_overlap() -> None:
    blocks = blocks_of([95, 30], 10)
    assert blocks[0] == Block(0, 0, 10) and blocks[9] == Block(0, 90, 95) and blocks[10] == Block(1, 0, 10)
    parts = split_blocks(blocks, {"test": 0.15, "val": 0.15}, seed=1)
    rows = {k: sum(b.rows for b in v) for k, v in parts.items()}
    assert sum(rows.values()) == 125 and set(parts) == {"test", "val", "train"}
    assert 15 <= rows["test"] <= 30 and 15 <= rows["val"] <= 30
    seen = [b for v in parts.values() for b in v]
    assert sorted(seen, key=lambda b: (b.part, b.start)) == blocks
    assert split_blocks(blocks, {"test": 0.15}, seed=1) == split_blocks(blocks, {"test": 0.15}, seed=1)


def test_each_train_event_once_per_epoch(tmp_path: Path) -> None:
    s = _stream(_write(tmp_path / "d.h5"))
    info = s.setup()
    train = _ids(s, "train")
    assert np.array_equal(np.sort(train), np.sort(s.split_indices("train")))
    assert len(train) == info.sizes["train"] == len(np.unique(train))
    everything = np.concatenate([s.split_indices(k) for k in ("train", "val", "test")])
    assert np.array_equal(np.sort(everything), np.arange(N))
    assert sum(info.sizes.values()) == N and 100 <= info.sizes["test"] <= 200
    assert len(s.loader("train")) == sum(1 for _ in s.loader("train")) == -(-info.sizes["train"] // 16)
    assert np.array_equal(_ids(s, "test"), s.split_indices("test"))  # in file order
    assert info.in_shape == (4,) and info.num_classes == 3 and info.class_names == ("0", "1", "2")


def test_order_is_seeded_per_epoch(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.h5")
    a, b = _stream(path), _stream(path)
    first = _ids(a, "train", epoch=0)
    assert np.array_equal(first, _ids(b, "train", epoch=0))  # resumable: (seed, epoch) fixes it
    assert not np.array_equal(first, _ids(a, "train", epoch=1))
    assert np.array_equal(_ids(a, "train", epoch=1), _ids(b, "train", epoch=1))
    other = _stream(path, seed=1)
    other.setup()
    assert not np.array_equal(np.sort(first), np.sort(_ids(other, "train")))  # another split too
    loader = a.loader("train")  # no set_epoch: each pass is the next epoch
    assert np.array_equal(np.concatenate([x[:, 0].numpy() for x, _ in loader]), first)
    assert np.array_equal(np.concatenate([x[:, 0].numpy() for x, _ in loader]), _ids(b, "train", epoch=1))


def test_buffer_mixes_blocks(tmp_path: Path) -> None:
    s = _stream(_write(tmp_path / "d.h5"), shuffle_buffer=200)
    s.setup()
    batch = next(iter(s.loader("train")))[0][:, 0].numpy()
    blocks = {int(i) // 5 for i in batch}  # blocks of 5 rows (1000 events / 200 blocks)
    assert len(blocks) > 3  # a batch draws from many blocks, not one run of rows


def test_statistics_match_numpy(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.h5")
    s = _stream(path, standardize=True)
    s.setup()
    with h5py.File(path) as f:
        x = f["x"][()]
    train = x[s.split_indices("train")]
    mean, divisor = s.fitted.scaling["x"]
    np.testing.assert_allclose(mean, train.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(divisor, train.std(axis=0), rtol=1e-6)
    served = np.concatenate([b[0].numpy() for b in s.loader("train")])
    np.testing.assert_allclose(served.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(served.std(axis=0), 1, atol=1e-4)


def test_regression_targets_scaled_like_numpy(tmp_path: Path) -> None:
    path = tmp_path / "r.h5"
    rng = np.random.default_rng(3)
    with h5py.File(path, "w") as f:
        f["x"] = rng.normal(size=(400, 2))
        f["y"] = rng.lognormal(2.0, 0.5, size=400)
    s = Stream(
        _source(path),
        batch_size=32,
        seed=0,
        shuffle_buffer=50,
        target_kind="values",
        log_targets=("y",),
        chunk_rows=20,
    )
    info = s.setup()
    with h5py.File(path) as f:
        y = np.log(f["y"][()][s.split_indices("train")])
    ((mean, std, log),) = info.target_scaling
    assert log and mean == pytest.approx(y.mean()) and std == pytest.approx(y.std())
    batch = next(iter(s.loader("val")))
    assert batch[1].dtype.is_floating_point and batch[1].shape == (32, 1)


def test_weights_served_and_unknown_labels_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.h5")
    s = Stream(_source(path, keys=("x", "y", "w")), batch_size=10, seed=0, shuffle_buffer=30, chunk_rows=50)
    assert s.setup().weighted
    _, y, w = next(iter(s.loader("train")))
    assert w.shape == (10,) and str(w.dtype) == "torch.float32" and str(y.dtype) == "torch.int64"
    s.fitted.classes = np.array([0, 1])  # as if the training split held no class 2
    with pytest.raises(DataError, match=r"label 2 .* not among the training split's classes \[0, 1\]"):
        list(s.loader("test"))


def test_given_splits_as_groups(tmp_path: Path) -> None:
    path = _write(tmp_path / "g.h5", n=600, group="train/")
    _write(path, n=200, seed=1, group="test/")
    src = StreamSource(
        parts=(Part(path, "train"), Part(path, "test")),
        keys=("x", "y"),
        assemble=_assemble,
        splits={"train": (0,), "test": (1,)},
    )
    s = Stream(src, batch_size=20, seed=0, shuffle_buffer=100, chunk_rows=50)
    info = s.setup()
    assert info.sizes["test"] == 200 and info.sizes["train"] + info.sizes["val"] == 600
    assert 60 <= info.sizes["val"] <= 120  # drawn from the training group
    assert np.array_equal(s.split_indices("test"), np.arange(600, 800))
    assert np.array_equal(_ids(s, "test"), np.arange(200))


def test_constituents_scaled_over_real_entries(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    rng = np.random.default_rng(0)
    valid = rng.random((300, 6)) < 0.5
    tracks = np.where(valid[..., None], rng.normal(5.0, 2.0, (300, 6, 2)), 0.0)
    with h5py.File(path, "w") as f:
        f["features"], f["tracks"], f["valid"] = rng.normal(size=(300, 3)), tracks, valid
        f["y"] = rng.integers(0, 2, 300)

    def assemble(raw: Mapping[str, np.ndarray], where: str) -> Arrays:
        x = {"features": raw["features"], "tracks": raw["tracks"], "tracks_valid": raw["valid"]}
        return Arrays(x=x, y=raw["y"], source=where, constituents={"tracks": ("a", "b")})

    src = StreamSource(parts=(Part(path),), keys=("features", "tracks", "valid", "y"), assemble=assemble)
    s = Stream(src, batch_size=25, seed=0, shuffle_buffer=60, standardize=True, chunk_rows=30)
    info = s.setup()
    assert info.input_shapes == {"features": (3,), "tracks": (6, 2), "tracks_valid": (6,)}
    assert info.in_shape == (3,) and info.constituents == {"tracks": ("a", "b")}
    rows = s.split_indices("train")
    mean, _ = s.fitted.scaling["x:tracks"]
    np.testing.assert_allclose(mean, tracks[rows][valid[rows]].mean(axis=0), rtol=1e-5)
    x, _ = next(iter(s.loader("val")))
    assert x["tracks_valid"].dtype.is_floating_point is False
    assert float(x["tracks"][~x["tracks_valid"]].abs().sum()) == 0.0  # padding stays 0


def test_checksum_names_the_files(tmp_path: Path) -> None:
    a, b = _write(tmp_path / "a.h5"), _write(tmp_path / "b.h5", seed=1)
    assert file_checksum([a]) != file_checksum([b]) and file_checksum([a]) == file_checksum([a])
    assert len(file_checksum([a, b])) == 64


class _Module(StreamingDataModule):
    def __init__(self, *, path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = Path(path)

    def load(self) -> Arrays:
        with h5py.File(self.path) as f:
            return Arrays(x=f["x"][()], y=f["y"][()])

    def stream_source(self) -> StreamSource | None:
        return _source(self.path)


def test_module_streams_above_the_limit_only(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.h5")
    big = _Module(path=str(path), memory_limit=10_000, shuffle_buffer=100, batch_size=32, standardize=True)
    assert big.info.sizes["train"] > 0 and big.streaming() is not None
    assert big.input_scaling is not None and big.input_scaling[0].shape == (4,)
    assert len(big.train_dataloader()) == -(-big.info.sizes["train"] // 32)
    assert np.array_equal(np.sort(big.split_indices("test")), big.split_indices("test"))
    small = _Module(path=str(path), memory_limit=10**9, batch_size=32)
    assert small.streaming() is None and sum(small.info.sizes.values()) == N


def test_files_reader_reads_compound_rows(tmp_path: Path) -> None:
    path = tmp_path / "jets.h5"
    jets = np.zeros(50, dtype=[("pt", "f4"), ("eta", "f4"), ("flavour", "i4")])
    jets["pt"] = np.arange(50)
    with h5py.File(path, "w") as f:
        f["train/jets"] = jets
    read, layout = files_reader()
    part = Part(path, "train")
    got = read(part, ["jets.pt", "jets.flavour"], 10, 20)
    assert np.array_equal(got["jets.pt"], np.arange(10, 20)) and got["jets.flavour"].shape == (10,)
    rows, nbytes = layout(part, ["jets.pt", "jets.flavour"])
    assert rows == 50 and nbytes == 50 * 8


def test_file_module_streams_end_to_end(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.h5")
    with h5py.File(path, "a") as f:
        f["pt"] = np.arange(N, dtype=np.float64)
    options: dict[str, Any] = {
        "path": str(path),
        "inputs": "x",
        "targets": "y",
        "weights": "w",
        "batch_size": 50,
    }
    dm = FileDataModule(memory_limit=10_000, shuffle_buffer=200, spectators=("pt",), **options)
    info = dm.info
    assert dm.streaming() is not None and info.weighted and info.num_classes == 3
    assert np.array_equal(info.extras["pt"], dm.split_indices("test"))  # in test loader order
    x, y, w = next(iter(dm.train_dataloader()))
    assert x.shape == (50, 4) and y.shape == (50,) and w.shape == (50,)
    with pytest.raises(DataError, match=r"d\.h5: 'y' \(data\.targets\)"):
        with h5py.File(path, "a") as f:
            del f["y"]
            f["y"] = np.array([b"a"] * N)
        FileDataModule(memory_limit=10_000, **options).setup()


def test_file_module_streams_constituents_and_given_splits(tmp_path: Path) -> None:
    path = tmp_path / "jets.h5"
    rng = np.random.default_rng(0)
    for group, n in (("train", 800), ("test", 200)):
        jets = np.zeros(n, dtype=[("pt", "f4"), ("eta", "f4"), ("flavour", "i4")])
        jets["pt"], jets["eta"], jets["flavour"] = np.arange(n), rng.normal(size=n), rng.integers(0, 2, n)
        tracks = np.zeros((n, 5), dtype=[("d0", "f4"), ("z0", "f4"), ("valid", "?")])
        tracks["valid"] = rng.random((n, 5)) < 0.6
        tracks["d0"] = np.where(tracks["valid"], rng.normal(2.0, 3.0, (n, 5)), 0)
        with h5py.File(path, "a") as f:
            f[f"{group}/jets"], f[f"{group}/tracks"] = jets, tracks
    dm = FileDataModule(
        path=str(path),
        inputs=["jets.pt", "jets.eta"],
        targets="jets.flavour",
        constituents={"tracks": {"dataset": "tracks", "fields": ["d0", "z0"], "valid": "valid", "max": 5}},
        splits={"train": "train", "test": "test"},
        memory_limit=1000,
        shuffle_buffer=100,
        batch_size=40,
        standardize=True,
    )
    info = dm.info
    assert dm.streaming() is not None and info.sizes["test"] == 200 and sum(info.sizes.values()) == 1000
    assert info.input_shapes["tracks"] == (5, 2) and info.num_classes == 2
    x, _ = next(iter(dm.test_dataloader()))
    assert set(x) == {"features", "tracks", "tracks_valid"} and x["tracks"].shape == (40, 5, 2)
    assert float(x["tracks"][~x["tracks_valid"]].abs().sum()) == 0.0


def test_streaming_refuses_several_processes(tmp_path: Path) -> None:
    from types import SimpleNamespace

    dm = _Module(path=str(_write(tmp_path / "d.h5")), memory_limit=10_000)
    dm.trainer = SimpleNamespace(world_size=2)  # type: ignore[assignment]
    with pytest.raises(DataError, match=r"data\.memory_limit: .* cannot yet be shared among 2 processes"):
        dm.train_dataloader()
