"""Where streamed events come from: files cut into blocks of consecutive rows, split by blocks
without reading them, and the one place that reads rows (HDF5, through h5py)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from labkit.errors import DataError

if TYPE_CHECKING:  # (no torch at import: the blocks are plain numpy and h5py)
    from labkit.data._base import Arrays

__all__ = [
    "CHUNK_ROWS",
    "MIN_BLOCKS",
    "Block",
    "Part",
    "RowReader",
    "StreamSource",
    "available_memory",
    "blocks_of",
    "file_checksum",
    "files_reader",
    "hdf5_layout",
    "read_hdf5_rows",
    "split_blocks",
    "streams",
]

#: rows read at a time (a block): large enough for sequential reads, small against the buffer
CHUNK_ROWS = 10_000
#: the random split cuts the events into at least this many blocks (so small files split finely)
MIN_BLOCKS = 200


@dataclass(frozen=True)
class Part:
    """Rows of one file: the whole file, or an HDF5 group in it (``data.splits: {train: train}``)."""

    path: Path
    group: str = ""

    def key(self, name: str) -> str:
        return f"{self.group.strip('/')}/{name}" if self.group else name


@dataclass(frozen=True)
class Block:
    """Rows ``start:stop`` of part number ``part``."""

    part: int
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


#: reads rows ``start:stop`` of the named datasets of a part (one function to swap per format)
RowReader = Callable[[Part, Sequence[str], int, int], dict[str, np.ndarray]]


def read_hdf5_rows(part: Part, keys: Sequence[str], start: int, stop: int) -> dict[str, np.ndarray]:
    """Rows ``start:stop`` of the HDF5 datasets ``keys`` (one slice read per dataset)."""
    import h5py

    try:
        with h5py.File(part.path, "r") as f:
            return {k: np.asarray(f[part.key(k)][start:stop]) for k in keys}
    except (OSError, KeyError) as exc:
        raise DataError(f"{part.path}: cannot read rows {start}:{stop} of {list(keys)} ({exc})") from None


def hdf5_layout(part: Part, keys: Sequence[str]) -> tuple[int, int]:
    """``(rows, bytes)`` of the datasets ``keys`` of a part, from the file's header alone."""
    import h5py

    try:
        with h5py.File(part.path, "r") as f:
            sets = [f[part.key(k)] for k in keys]
            shapes = [(d.shape or (0,), d.dtype.itemsize) for d in sets]
    except (OSError, KeyError) as exc:
        raise DataError(f"{part.path}: cannot read the layout of {list(keys)} ({exc})") from None
    return int(shapes[0][0][0]), sum(int(np.prod(s)) * size for s, size in shapes)


def available_memory() -> int:
    """Bytes of memory available to new allocations (Linux ``MemAvailable``; else free pages)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def streams(nbytes: int, memory_limit: int | None, available: int | None = None) -> bool:
    """Whether ``nbytes`` of arrays are streamed: above ``memory_limit`` (None: half of
    ``available``, by default :func:`available_memory` now)."""
    limit = memory_limit if memory_limit is not None else (available or available_memory()) // 2
    return nbytes > limit


def file_checksum(paths: Sequence[Path]) -> str:
    """The data's checksum when streaming: sha256 of each file's name, size and modification time
    (the data are not read a second time to hash them; rewriting a file changes it)."""
    digest = hashlib.sha256()
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def blocks_of(counts: Sequence[int], block_rows: int, parts: Sequence[int] | None = None) -> list[Block]:
    """Blocks of at most ``block_rows`` consecutive rows covering parts with ``counts`` rows."""
    ids = range(len(counts)) if parts is None else parts
    return [
        Block(p, s, min(s + block_rows, n))
        for p, n in zip(ids, counts, strict=True)
        for s in range(0, n, block_rows)
    ]


def split_blocks(
    blocks: Sequence[Block], fractions: Mapping[str, float], seed: int, rest: str = "train"
) -> dict[str, list[Block]]:
    """Blocks drawn at random (seeded) for each split of ``fractions`` (``{"test": 0.15}``: about
    that share of the rows, at least one block); the other blocks go to ``rest``. Each split's
    blocks are in file order."""
    order = [int(i) for i in np.random.default_rng(seed).permutation(len(blocks))]
    total = sum(b.rows for b in blocks)
    out: dict[str, list[Block]] = {}
    i = 0
    for name, fraction in fractions.items():
        want, got, chosen = round(fraction * total), 0, list[int]()
        while i < len(order) - 1 and (not chosen or got < want):
            chosen.append(order[i])
            got, i = got + blocks[order[i]].rows, i + 1
        out[name] = [blocks[j] for j in sorted(chosen)]
    out[rest] = [blocks[j] for j in sorted(order[i:])]
    return out


@dataclass(frozen=True)
class StreamSource:
    """What a DataModule tells the stream about its files: the parts, the keys read per block and
    how rows become :class:`Arrays` (``assemble`` over ``read``, or ``rows`` doing both)."""

    parts: tuple[Part, ...]
    keys: tuple[str, ...]  #: the datasets read for every block (the first one counts the rows)
    #: raw rows → Arrays, with the module's own checks and cleaning (``assemble`` for files)
    assemble: Callable[[dict[str, np.ndarray], str], Arrays] | None = None
    #: the files' own splits as part numbers, or None: split at random with the fractions
    splits: Mapping[str, tuple[int, ...]] | None = None
    read: RowReader = read_hdf5_rows
    layout: Callable[[Part, Sequence[str]], tuple[int, int]] = hdf5_layout
    #: ``rows(part number, start, stop)`` → Arrays: reads and assembles (instead of read + assemble)
    rows: Callable[[int, int, int], Arrays] | None = None

    def nbytes(self) -> int:
        """The bytes the arrays would take in memory (from the headers)."""
        return sum(self.layout(p, self.keys)[1] for p in self.parts)


def files_reader(
    fmt: str = "auto", tree: str | None = None, fields: Mapping[str, str] | None = None
) -> tuple[RowReader, Callable[[Part, Sequence[str]], tuple[int, int]]]:
    """``(read, layout)`` for :class:`StreamSource` through labkit's file readers
    (:func:`~labkit.data._files.read_arrays` with ``rows``): HDF5 reads only the rows asked for
    (compound fields such as ``jets.pt`` included); the other formats read the file and slice."""
    from labkit.data._files import count_rows, event_nbytes, read_arrays

    def read(part: Part, keys: Sequence[str], start: int, stop: int) -> dict[str, np.ndarray]:
        full = {k: part.key(k) for k in keys}
        found = read_arrays(part.path, list(full.values()), fmt, tree, fields, rows=slice(start, stop))
        return {k: found[f] for k, f in full.items()}

    def layout(part: Part, keys: Sequence[str]) -> tuple[int, int]:
        full = [part.key(k) for k in keys]
        rows = count_rows(part.path, full[0], fmt, tree)
        return rows, rows * event_nbytes(part.path, full, fmt, tree)

    return read, layout
