"""data.stage: copies on node-local disk, verified, reused after a requeue, removed at the end."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

import labkit.data._staging as staging
from labkit.data._staging import MARKER, default_stage_dir, stage_dir_for, stage_files, unstage
from labkit.errors import DataError


@pytest.fixture
def sources(tmp_path: Path) -> list[Path]:
    out = []
    for i in range(2):
        path = tmp_path / "shared" / f"run_{i}.h5"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(os.urandom(100_000 + i))
        out.append(path)
    return out


def test_default_directory_from_the_environment() -> None:
    assert default_stage_dir({"SLURM_TMPDIR": "/local/job1", "TMPDIR": "/tmp/x"}) == Path("/local/job1")
    assert default_stage_dir({"TMPDIR": "/scratch/me"}) == Path("/scratch/me")
    assert default_stage_dir({"SLURM_TMPDIR": ""}) == Path("/tmp")
    assert default_stage_dir(None).is_dir()


def test_copies_are_verified_and_reused(sources: list[Path], tmp_path: Path) -> None:
    target = tmp_path / "local"
    said = io.StringIO()
    copies = stage_files(sources, target=target, progress=said)
    assert [c.name for c in copies] == ["run_0.h5", "run_1.h5"]
    assert all(c.read_bytes() == s.read_bytes() for c, s in zip(copies, sources, strict=True))
    assert copies[0].parent == stage_dir_for(sources[0], target) != copies[1].parent
    assert copies[0].stat().st_mtime_ns == sources[0].stat().st_mtime_ns  # (the streaming checksum)
    record = json.loads((copies[0].parent / MARKER).read_text())
    assert record["size"] == 100_000 and ("sha256" in record or "xxh3_128" in record)
    assert "staged run_0.h5: 0.1 MiB" in said.getvalue() and "MB/s" in said.getvalue()
    assert not list(copies[0].parent.glob(".*partial*"))
    # a requeued job: the verified copies are used as they are, nothing is copied again
    again = io.StringIO()
    assert stage_files(sources, target=target, progress=again) == copies
    assert again.getvalue().count("reusing the verified copy") == 2


def test_an_unverified_copy_is_made_again(sources: list[Path], tmp_path: Path) -> None:
    target = tmp_path / "local"
    (copy,) = stage_files(sources[:1], target=target)
    (copy.parent / MARKER).unlink()  # killed before the marker was written
    copy.write_bytes(b"half")
    assert stage_files(sources[:1], target=target) == [copy]
    assert copy.read_bytes() == sources[0].read_bytes() and (copy.parent / MARKER).is_file()


def test_a_changed_source_gets_a_new_copy(sources: list[Path], tmp_path: Path) -> None:
    target = tmp_path / "local"
    (first,) = stage_files(sources[:1], target=target)
    sources[0].write_bytes(b"new contents")
    (second,) = stage_files(sources[:1], target=target)
    assert second.parent != first.parent and second.read_bytes() == b"new contents"


def test_a_bad_copy_is_refused(sources: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = staging._copy

    def corrupting(source: Path, copy: Path, *args: object) -> str:
        digest = real(source, copy, *args)  # type: ignore[arg-type]
        copy.write_bytes(b"flipped bits")
        return digest

    monkeypatch.setattr(staging, "_copy", corrupting)
    with pytest.raises(
        DataError, match=r"data\.stage: the copy of .*run_0\.h5 in .* differs from the source"
    ):
        stage_files(sources[:1], target=tmp_path / "local")
    home = stage_dir_for(sources[0], tmp_path / "local")
    assert not (home / MARKER).exists() and not (home / "run_0.h5").exists()


def test_unwritable_or_full_target(
    sources: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(DataError, match=r"data\.stage: cannot create the staging directory .*file/sub"):
        stage_files(sources, target=blocker / "sub")
    monkeypatch.setattr(
        staging.shutil, "disk_usage", lambda _: type("U", (), {"free": 10 * 2**20, "total": 0, "used": 0})()
    )
    big = tmp_path / "big.h5"
    with big.open("wb") as f:
        f.truncate(50 * 2**20)
    with pytest.raises(DataError, match=r"data\.stage: .* has 10 MiB free, .*big\.h5 needs 50 MiB"):
        stage_files([big], target=tmp_path / "local")


def test_unstage_removes_only_staging_directories(sources: list[Path], tmp_path: Path) -> None:
    copies = stage_files(sources, target=tmp_path / "local")
    unstage([*copies, sources[0]])  # a path not staged is left alone
    assert not any(c.parent.exists() for c in copies)
    assert sources[0].is_file() and (tmp_path / "local").is_dir()


def test_file_module_reads_the_staged_copies(tmp_path: Path) -> None:
    """FileDataModule with data.stage reads a glob and split files from their copies."""
    import h5py
    import numpy as np

    from labkit.data._arrays import FileDataModule

    rng = np.random.default_rng(0)
    for i in range(3):
        with h5py.File(tmp_path / f"run_{i}.h5", "w") as f:
            f["x"], f["y"] = rng.normal(size=(50, 2)), rng.integers(0, 2, 50)
    target = tmp_path / "local"
    dm = FileDataModule(
        path=str(tmp_path / "run_[01].h5"),
        splits={"train": str(tmp_path / "run_[01].h5"), "test": str(tmp_path / "run_2.h5")},
        inputs="x",
        targets="y",
        stage=str(target),
    )
    assert dm.info.sizes["test"] == 50 and sum(dm.info.sizes.values()) == 150
    copies = sorted(target.glob("labkit-stage-*/run_*.h5"))
    assert sorted(c.name for c in copies) == ["run_0.h5", "run_1.h5", "run_2.h5"]
    assert all(str(p.path).startswith(str(target)) for p in dm.event_source().parts())
    dm.unstage()
    assert not list(target.iterdir())
