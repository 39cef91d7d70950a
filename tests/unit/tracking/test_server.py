"""``labkit server``: the mlflow server command, its state files, the connection cap, every error."""

from __future__ import annotations

import socket
import stat
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labkit.cli import app
from labkit.errors import LabkitError
from labkit.tracking.server import (
    AuthFiles,
    ServerError,
    ServerOptions,
    add_user,
    admin_username,
    check_admin,
    connection_cap,
    default_state_dir,
    grant,
    prepare_state,
    run_server,
    server_command,
    writers_per_worker,
)

PASSWORD = "a-long-admin-password"
DB_PASSWORD = "db-secret-pw"
PG = f"postgresql://mlflow:{DB_PASSWORD}@db.example.org:5432/mlflow"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"HOME": str(tmp_path / "home"), "PATH": "/usr/bin", "MLFLOW_AUTH_ADMIN_PASSWORD": PASSWORD}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def files_text(root: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------- state directory


def test_state_dir_follows_xdg_data_home(tmp_path: Path) -> None:
    assert default_state_dir({"XDG_DATA_HOME": str(tmp_path)}) == tmp_path / "labkit" / "server"
    home = tmp_path / "home"
    assert default_state_dir({"HOME": str(home)}) == home / ".local" / "share" / "labkit" / "server"
    assert (
        default_state_dir({"HOME": str(home), "XDG_DATA_HOME": ""}).parent.parent == home / ".local" / "share"
    )


def test_state_dir_option_wins(tmp_path: Path, env: dict[str, str]) -> None:
    options = ServerOptions(state_dir=tmp_path / "st")
    assert options.state_path({**env, "XDG_DATA_HOME": str(tmp_path / "x")}) == tmp_path / "st"


# ---------------------------------------------------------------------------- argv and environment


def test_command_without_auth_defaults_under_the_state_dir(tmp_path: Path, env: dict[str, str]) -> None:
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    state = tmp_path / "data" / "labkit" / "server"
    cmd = server_command(ServerOptions(), env)
    assert cmd.argv[:4] == [sys.executable, "-m", "mlflow", "server"]
    args = cmd.argv[4:]
    assert args[args.index("--host") + 1] == "127.0.0.1"
    assert args[args.index("--port") + 1] == "5000"
    assert args[args.index("--workers") + 1] == "2"
    assert "--serve-artifacts" in args
    assert args[args.index("--artifacts-destination") + 1] == str(state / "artifacts")
    assert "--app-name" not in args
    assert cmd.env["MLFLOW_BACKEND_STORE_URI"] == f"sqlite:///{state / 'mlflow.db'}"
    assert cmd.env["MLFLOW_SQLALCHEMYSTORE_POOL_SIZE"] == "5"
    assert cmd.env["MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW"] == "10"
    assert cmd.env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert cmd.env["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert "MLFLOW_AUTH_CONFIG_PATH" not in cmd.env and "MLFLOW_FLASK_SERVER_SECRET_KEY" not in cmd.env
    assert cmd.env["PATH"] == "/usr/bin"  # the rest of the environment is inherited


def test_command_carries_the_options(tmp_path: Path, env: dict[str, str]) -> None:
    options = ServerOptions(
        host="0.0.0.0",
        port=8123,
        backend_store_uri=PG,
        artifacts_destination="s3://bucket/mlflow",
        workers=4,
        db_pool_size=3,
        db_max_overflow=2,
        state_dir=tmp_path,
        allowed_hosts="mlflow.example.org",
    )
    cmd = server_command(options, env)
    joined = " ".join(cmd.argv)
    assert "--host 0.0.0.0 --port 8123 --workers 4" in joined
    assert "--artifacts-destination s3://bucket/mlflow" in joined
    assert "--allowed-hosts mlflow.example.org" in joined
    assert cmd.env["MLFLOW_BACKEND_STORE_URI"] == PG
    assert (cmd.env["MLFLOW_SQLALCHEMYSTORE_POOL_SIZE"], cmd.env["MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW"]) == (
        "3",
        "2",
    )


def test_relative_artifacts_directory_is_made_absolute(tmp_path: Path, env: dict[str, str]) -> None:
    cmd = server_command(ServerOptions(artifacts_destination="art", state_dir=tmp_path), env)
    assert cmd.argv[cmd.argv.index("--artifacts-destination") + 1] == str(Path("art").absolute())


def test_database_password_is_not_on_the_command_line(tmp_path: Path, env: dict[str, str]) -> None:
    cmd = server_command(ServerOptions(backend_store_uri=PG, state_dir=tmp_path), env)
    assert DB_PASSWORD not in " ".join(cmd.argv)


def test_variables_that_would_change_the_server_are_not_inherited(
    tmp_path: Path, env: dict[str, str]
) -> None:
    env |= {
        "MLFLOW_SQLALCHEMYSTORE_POOLCLASS": "NullPool",  # unlimited connections
        "MLFLOW_REGISTRY_STORE_URI": "sqlite:///other.db",
        "MLFLOW_READ_REPLICA_BACKEND_STORE_URI": PG,
        "MLFLOW_BACKEND_STORE_URI": "sqlite:///elsewhere.db",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true",
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "from-the-shell",
    }
    cmd = server_command(ServerOptions(state_dir=tmp_path), env)
    for name in (
        "MLFLOW_SQLALCHEMYSTORE_POOLCLASS",
        "MLFLOW_REGISTRY_STORE_URI",
        "MLFLOW_READ_REPLICA_BACKEND_STORE_URI",
    ):
        assert name not in cmd.env
    assert cmd.env["MLFLOW_BACKEND_STORE_URI"] == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert cmd.env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert "MLFLOW_FLASK_SERVER_SECRET_KEY" not in cmd.env


def test_command_with_auth(tmp_path: Path, env: dict[str, str]) -> None:
    options = ServerOptions(auth=True, state_dir=tmp_path)
    files = prepare_state(options, env)
    assert files is not None
    cmd = server_command(options, env, files)
    assert cmd.argv[-2:] == ["--app-name", "basic-auth"]
    assert cmd.env["MLFLOW_AUTH_CONFIG_PATH"] == str(tmp_path / "basic_auth.ini")
    assert cmd.env["MLFLOW_FLASK_SERVER_SECRET_KEY"] == files.secret_key
    assert cmd.env["MLFLOW_AUTH_ADMIN_USERNAME"] == "admin"
    assert cmd.env["MLFLOW_AUTH_ADMIN_PASSWORD"] == PASSWORD  # the child's environment only
    assert PASSWORD not in " ".join(cmd.argv)
    assert files.secret_key not in " ".join(cmd.argv)


def test_admin_username_from_the_environment(tmp_path: Path, env: dict[str, str]) -> None:
    env["MLFLOW_AUTH_ADMIN_USERNAME"] = "boss"
    options = ServerOptions(auth=True, state_dir=tmp_path)
    cmd = server_command(options, env, prepare_state(options, env))
    assert cmd.env["MLFLOW_AUTH_ADMIN_USERNAME"] == "boss"
    assert "admin_username = boss" in (tmp_path / "basic_auth.ini").read_text()
    assert admin_username({**env, "MLFLOW_AUTH_ADMIN_USERNAME": ""}) == "admin"


def test_auth_command_needs_the_state_files(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="prepare_state"):
        server_command(ServerOptions(auth=True, state_dir=tmp_path), env)


# ---------------------------------------------------------------------------- state files


def test_state_files_secret_key_kept_private_and_across_starts(tmp_path: Path, env: dict[str, str]) -> None:
    state = tmp_path / "state"
    options = ServerOptions(auth=True, state_dir=state)
    first = prepare_state(options, env)
    second = prepare_state(options, env)
    assert first is not None and second is not None
    assert first.secret_key == second.secret_key and len(first.secret_key) == 64
    key = state / "secret_key"
    assert key.read_text().strip() == first.secret_key
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((state / "basic_auth.ini").stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert (state / "artifacts").is_dir()


def test_a_loose_secret_key_file_is_made_private(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "secret_key").write_text("abc\n")
    (tmp_path / "secret_key").chmod(0o644)
    files = prepare_state(ServerOptions(auth=True, state_dir=tmp_path), env)
    assert files == AuthFiles("abc", tmp_path / "basic_auth.ini")
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600


def test_empty_secret_key_file(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "secret_key").write_text("")
    with pytest.raises(ServerError, match=r"secret_key is empty; delete it"):
        prepare_state(ServerOptions(auth=True, state_dir=tmp_path), env)


def test_auth_ini_content(tmp_path: Path, env: dict[str, str]) -> None:
    prepare_state(ServerOptions(auth=True, state_dir=tmp_path), env)
    ini = (tmp_path / "basic_auth.ini").read_text()
    assert "default_permission = READ\n" in ini
    assert f"database_uri = sqlite:///{tmp_path / 'basic_auth.db'}\n" in ini
    assert "auth_cache_ttl_seconds = 60\n" in ini
    assert "admin_username = admin\n" in ini
    assert "password" not in ini


def test_auth_db_uri_goes_to_the_ini(tmp_path: Path, env: dict[str, str]) -> None:
    prepare_state(ServerOptions(auth=True, auth_db_uri=PG + "_auth", state_dir=tmp_path), env)
    assert f"database_uri = {PG}_auth\n" in (tmp_path / "basic_auth.ini").read_text()


def test_admin_password_is_in_no_file_and_no_argv(tmp_path: Path, env: dict[str, str]) -> None:
    options = ServerOptions(auth=True, state_dir=tmp_path / "state")
    cmd = server_command(options, env, prepare_state(options, env))
    assert PASSWORD not in files_text(tmp_path)
    assert PASSWORD not in " ".join(cmd.argv)


def test_without_auth_no_secret_files(tmp_path: Path, env: dict[str, str]) -> None:
    assert prepare_state(ServerOptions(state_dir=tmp_path / "s"), env) is None
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["artifacts"]


def test_state_dir_that_cannot_be_made(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ServerError, match=r"state directory .*file/state.*choose another with --state-dir"):
        prepare_state(ServerOptions(state_dir=tmp_path / "file" / "state"), env)


# ---------------------------------------------------------------------------- admin password


@pytest.mark.parametrize("value", [None, ""])
def test_auth_without_admin_password(tmp_path: Path, env: dict[str, str], value: str | None) -> None:
    if value is None:
        del env["MLFLOW_AUTH_ADMIN_PASSWORD"]
    else:
        env["MLFLOW_AUTH_ADMIN_PASSWORD"] = value
    options = ServerOptions(auth=True, state_dir=tmp_path / "state")
    with pytest.raises(ServerError, match=r"--auth needs the admin password: set MLFLOW_AUTH_ADMIN_PASSWORD"):
        prepare_state(options, env)
    assert not (tmp_path / "state").exists()  # nothing written


def test_auth_with_a_short_admin_password(tmp_path: Path, env: dict[str, str]) -> None:
    env["MLFLOW_AUTH_ADMIN_PASSWORD"] = "short-pw"
    with pytest.raises(ServerError, match=r"MLFLOW_AUTH_ADMIN_PASSWORD is 8 characters long; .* at least 12"):
        prepare_state(ServerOptions(auth=True, state_dir=tmp_path), env)
    with pytest.raises(LabkitError, match="at least 12"):
        server_command(ServerOptions(auth=True, state_dir=tmp_path), env, AuthFiles("k", tmp_path / "x.ini"))


# ---------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"port": 0}, r"--port 0: choose a port between 1 and 65535"),
        ({"port": 70000}, r"--port 70000"),
        ({"host": " "}, r"--host: give an address"),
        ({"workers": 0}, r"--workers 0: give 1 or more"),
        ({"db_pool_size": 0}, r"--db-pool-size 0: give 1 or more \(MLflow ignores 0"),
        ({"db_max_overflow": 0}, r"--db-max-overflow 0: give 1 or more \(MLflow ignores 0 .* default of 10"),
        ({"db_max_overflow": -1}, r"--db-max-overflow -1"),
        (
            {"backend_store_uri": "/srv/mlflow"},
            r"--backend-store-uri '/srv/mlflow': not a database URL; use postgresql://",
        ),
        ({"backend_store_uri": "file:///srv/mlruns"}, r"supported: sqlite, postgresql, mysql"),
        ({"auth_db_uri": "sqlite:///a.db"}, r"--auth-db-uri goes with --auth"),
        ({"auth": True, "auth_db_uri": "users.db"}, r"--auth-db-uri 'users.db': not a database URL"),
        ({"artifacts_destination": ""}, r"--artifacts-destination: give a directory"),
    ],
)
def test_bad_options(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ServerError, match=message):
        ServerOptions(**kwargs)  # type: ignore[arg-type]


def test_bad_backend_uri_message_hides_the_password() -> None:
    with pytest.raises(ServerError) as err:
        ServerOptions(backend_store_uri=f"http://u:{DB_PASSWORD}@host/db")
    assert DB_PASSWORD not in str(err.value) and "u:***@host" in str(err.value)


@pytest.mark.parametrize("uri", ["sqlite:///x.db", PG, "postgresql+psycopg://a@b/c", "mysql+pymysql://a@b/c"])
def test_database_uris_accepted(uri: str) -> None:
    assert ServerOptions(backend_store_uri=uri).backend(Path("/s")) == uri


# ---------------------------------------------------------------------------- connection cap


@pytest.mark.parametrize(
    ("kwargs", "cap"),
    [
        ({}, (2 * 3 + 2) * (5 + 10)),  # the defaults: 120
        ({"workers": 1, "db_pool_size": 1, "db_max_overflow": 1}, 10),
        ({"workers": 4, "db_pool_size": 2, "db_max_overflow": 2}, (4 * 3 + 2) * 4),
        ({"auth": True}, 120),  # users in SQLite: no connections to a database server
        (
            {"auth": True, "auth_db_uri": PG + "_auth", "db_pool_size": 2, "db_max_overflow": 2},
            (6 + 2 + 3) * 4,
        ),
    ],
)
def test_connection_cap(kwargs: dict[str, object], cap: int) -> None:
    assert connection_cap(ServerOptions(**kwargs)) == cap  # type: ignore[arg-type]


def test_writers_per_worker() -> None:
    assert writers_per_worker(ServerOptions(db_pool_size=5, db_max_overflow=4)) == 8


# ---------------------------------------------------------------------------- the foreground process


def test_run_server_refuses_a_port_in_use(tmp_path: Path, env: dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ServerError, match=rf"cannot listen on 127.0.0.1:{port}: .*choose another --port"):
            run_server(ServerOptions(port=port, state_dir=tmp_path), env)


# ---------------------------------------------------------------------------- users and grants


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (None, r"no server: give --url http://HOST:PORT or set MLFLOW_TRACKING_URI"),
        ("", r"no server"),
        ("ftp://host", r"--url 'ftp://host': give the server's http:// or https:// address"),
        ("sqlite:///mlflow.db", r"http:// or https://"),
        (
            "http://admin:pw@host:5000",
            r"--url 'http://admin:\*\*\*@host:5000': no credentials in URLs; set MLFLOW_TRACKING_USERNAME",
        ),
    ],
)
def test_bad_server_urls(url: str | None, message: str) -> None:
    with pytest.raises(ServerError, match=message):
        check_admin(url)
    with pytest.raises(ServerError, match=message):
        grant(url, "alice", "exp", "READ")


def test_admin_credentials_are_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "x")
    with pytest.raises(
        ServerError, match=r"set MLFLOW_TRACKING_USERNAME to an admin's user name and password"
    ):
        check_admin("http://127.0.0.1:1")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    with pytest.raises(ServerError, match=r"set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"):
        add_user("http://127.0.0.1:1", "alice", "long-enough-password")
    with pytest.raises(ServerError, match=r"MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"):
        grant("http://127.0.0.1:1", "alice", "exp", "read")


@pytest.mark.parametrize("permission", ["write", "OWNER", "", "NO_PERMISSIONS"])
def test_bad_permission(permission: str) -> None:
    with pytest.raises(ServerError, match=rf"permission '{permission}'.*: choose one of READ, EDIT, MANAGE"):
        grant("http://127.0.0.1:1", "alice", "exp", permission)


def test_bad_permission_with_a_hint() -> None:
    with pytest.raises(ServerError, match=r"permission 'reed' \(did you mean 'READ'\?\): choose one of"):
        grant("http://127.0.0.1:1", "alice", "exp", "reed")


def test_short_user_password() -> None:
    with pytest.raises(
        ServerError, match=r"the password for 'alice' is 5 characters long; MLflow needs at least 12"
    ):
        add_user("http://127.0.0.1:1", "alice", "short")


@pytest.mark.parametrize("name", ["", " alice", "a:b"])
def test_bad_user_name(name: str) -> None:
    with pytest.raises(ServerError, match=r"user name .*: give a name without spaces at its ends or ':'"):
        add_user("http://127.0.0.1:1", name, "long-enough-password")


def test_unreachable_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pw")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(ServerError, match=r"cannot reach http://127.0.0.1:1: is the server running"):
        add_user("http://127.0.0.1:1/", "alice", "long-enough-password")


# ---------------------------------------------------------------------------- CLI


def test_cli_start_auth_without_admin_password_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["server", "start", "--auth", "--state-dir", str(tmp_path / "state")],
        env={"MLFLOW_AUTH_ADMIN_PASSWORD": None, "MLFLOW_BACKEND_STORE_URI": None},
    )
    assert result.exit_code == 2
    assert "labkit: error: --auth needs the admin password: set MLFLOW_AUTH_ADMIN_PASSWORD" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["server", "start", "--db-max-overflow", "0"], "--db-max-overflow 0: give 1 or more"),
        (
            ["server", "start", "--backend-store-uri", "mlruns"],
            "--backend-store-uri 'mlruns': not a database URL",
        ),
        (
            ["server", "grant", "alice", "exp", "write", "--url", "http://127.0.0.1:1"],
            "choose one of READ, EDIT, MANAGE",
        ),
        (
            ["server", "grant", "alice", "exp", "READ"],
            "give --url http://HOST:PORT or set MLFLOW_TRACKING_URI",
        ),
        (["server", "adduser", "alice", "--url", "ftp://x"], "give the server's http:// or https:// address"),
    ],
)
def test_cli_errors_exit_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(
        app, args, env={"MLFLOW_TRACKING_URI": None, "MLFLOW_BACKEND_STORE_URI": None}
    )
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_cli_adduser_checks_credentials_before_asking_for_a_password() -> None:
    result = CliRunner().invoke(
        app,
        ["server", "adduser", "alice", "--url", "http://127.0.0.1:1"],
        env={"MLFLOW_TRACKING_USERNAME": None, "LABKIT_NEW_USER_PASSWORD": None},
    )
    assert result.exit_code == 2
    assert "Password" not in result.output
    assert "set MLFLOW_TRACKING_USERNAME" in result.output
