"""Hostile input to ``labkit compare`` / ``report`` / ``reproduce`` (issue 14): a tracking URI that
is no store, a ``--since`` beyond the calendar and a broken cache are one clear error each, and
MLflow never gets to create or open a file that is not its database."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from labkit._cache import default_cache_dir
from labkit.errors import ConfigError, TrackingError
from labkit.report import parse_since
from labkit.tracking._provenance import redact_uri
from labkit.tracking.query._cache import RunCache
from labkit.tracking.query._fetch import check_store_uri, fetch_run, fetch_runs


@pytest.mark.parametrize("text", ["100000000000000000000d", "99999999999w", "3000000d", "1" * 5000 + "h"])
def test_since_beyond_the_calendar_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match=r"--since '\d+.*: reaches back before the year 1; use a shorter"):
        parse_since(text)


def test_since_still_reads_durations_and_dates() -> None:
    now = datetime(2026, 11, 30, tzinfo=UTC)
    assert parse_since("2w", now) == datetime(2026, 11, 16, tzinfo=UTC)
    assert parse_since("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    with pytest.raises(ConfigError, match=r"--since: cannot read 'x+'\.\.\. \(100 characters\)"):
        parse_since("x" * 100)


@pytest.fixture
def not_a_database(tmp_path: Path) -> Path:
    path = tmp_path / "passwd"
    path.write_text("root:x:0:0:root:/root:/bin/bash\n")
    return path


def _hostile(tmp_path: Path, not_a_database: Path) -> list[tuple[str, str]]:
    return [
        ("bogus://x", r"unknown scheme 'bogus'; use http\(s\)://HOST:PORT .*sqlite:///path/to/mlflow.db"),
        ("postgres://db/mlflow", r"unknown scheme 'postgres' \(did you mean 'postgresql'\?\)"),
        (f"sqlite:///{not_a_database}", rf"{not_a_database} is not an SQLite database"),
        (f"sqlite:///{tmp_path}", rf"{tmp_path} is a directory, not an SQLite database file"),
        (
            f"sqlite:///{tmp_path}/nowhere/mlflow.db",
            r"no tracking store at .*nowhere/mlflow.db \(no such file\)",
        ),
        ("sqlite:////dev/null", r"/dev/null is not a regular file"),
        ("sqlite:///a\x00b.db", r"holds a NUL byte"),
    ]


def test_compare_refuses_a_uri_that_is_no_tracking_store(tmp_path: Path, not_a_database: Path) -> None:
    before = not_a_database.read_bytes()
    for uri, message in _hostile(tmp_path, not_a_database):
        with pytest.raises(
            TrackingError, match=r"tracking URI '.*' \(--tracking-uri or \$MLFLOW_TRACKING_URI\): "
        ):
            check_store_uri(uri)
        with pytest.raises(TrackingError, match=message):
            fetch_runs(uri, cache_dir=tmp_path / "cache")
    assert not_a_database.read_bytes() == before  # never opened for writing
    assert not (tmp_path / "nowhere").exists()  # and no folder made for a store that is not there


def test_reproduce_refuses_a_uri_that_is_no_tracking_store(tmp_path: Path, not_a_database: Path) -> None:
    for uri, message in _hostile(tmp_path, not_a_database):
        with pytest.raises(TrackingError, match=message):
            fetch_run(uri, "0123abcd")


def test_a_password_in_a_bad_uri_is_not_repeated() -> None:
    with pytest.raises(TrackingError) as caught:
        check_store_uri("bogus://ana:s3cret@host/x")
    assert "s3cret" not in str(caught.value) and redact_uri("bogus://ana:s3cret@host/x") in str(caught.value)


def test_known_schemes_pass_the_check(tmp_path: Path) -> None:
    for uri in [
        "http://127.0.0.1:5000",
        "HTTPS://mlflow.example",
        "postgresql+psycopg2://u@h/db",
        "sqlite://",
    ]:
        check_store_uri(uri)
    empty = tmp_path / "new.db"
    empty.touch()  # an empty file is what SQLite makes of a new database
    check_store_uri(f"sqlite:///{empty}")


def test_a_damaged_run_cache_is_started_again(tmp_path: Path) -> None:
    uri = "http://127.0.0.1:5000"
    digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / f"{digest}.db").write_bytes(b"not a database at all" * 100)
    with RunCache(uri, tmp_path) as cache:
        assert cache.records(["1"]) == []


def test_an_unusable_cache_folder_names_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(TrackingError, match=r"the run cache .* cannot be used .*set LABKIT_CACHE_DIR"):
        RunCache("http://127.0.0.1:5000", blocker)


@pytest.mark.parametrize("name", ["LABKIT_CACHE_DIR", "XDG_CACHE_HOME"])
def test_a_cache_dir_of_an_unknown_user_is_a_config_error(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABKIT_CACHE_DIR", raising=False)
    monkeypatch.setenv(name, "~nosuchuser-labkit/cache")
    with pytest.raises(ConfigError, match=rf"\${name}: '~nosuchuser-labkit/cache': cannot expand"):
        default_cache_dir()
