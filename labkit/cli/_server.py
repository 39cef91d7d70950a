"""``labkit server``: the group's MLflow tracking server (start, adduser, grant)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from labkit.cli._app import _errors

server_app = typer.Typer(
    help="The group's MLflow tracking server: labkit server start [--auth] [--backend-store-uri "
    "postgresql://...]; labkit server adduser NAME; labkit server grant NAME EXPERIMENT PERMISSION. "
    "See docs/server.md.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="The server (default: $MLFLOW_TRACKING_URI). Admin credentials: "
        "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD.",
        show_default=False,
    ),
]


@server_app.command("start")
def server_start(
    host: Annotated[
        str, typer.Option(help="Address to listen on; keep 127.0.0.1 behind a reverse proxy.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5000,
    backend_store_uri: Annotated[
        str | None,
        typer.Option(
            envvar="MLFLOW_BACKEND_STORE_URI",
            help="postgresql://USER@HOST/DB for a group, sqlite:///PATH on one machine "
            "(default: sqlite under the state directory). A password belongs in ~/.pgpass or this "
            "variable, not on the command line.",
            show_default=False,
        ),
    ] = None,
    artifacts_destination: Annotated[
        str | None,
        typer.Option(
            help="Where the server keeps artifacts: a directory or s3:// ... URI "
            "(default: artifacts/ under the state directory).",
            show_default=False,
        ),
    ] = None,
    auth: Annotated[
        bool,
        typer.Option(
            "--auth", help="Require a login (MLflow basic-auth); admin password: MLFLOW_AUTH_ADMIN_PASSWORD."
        ),
    ] = False,
    auth_db_uri: Annotated[
        str | None,
        typer.Option(
            help="Where --auth keeps users (default: sqlite under the state directory).", show_default=False
        ),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Server worker processes.")] = 2,
    db_pool_size: Annotated[
        int, typer.Option(min=1, max=1000, help="Database connections each pool keeps open.")
    ] = 5,
    db_max_overflow: Annotated[
        int, typer.Option(min=0, max=1000, help="Extra connections each pool may open under load.")
    ] = 10,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            help="Secret key, auth config, default databases (default: $XDG_DATA_HOME/labkit/server)."
        ),
    ] = None,
    allowed_hosts: Annotated[
        str | None,
        typer.Option(help="Host names a reverse proxy forwards, comma-separated (e.g. mlflow.example.org)."),
    ] = None,
) -> None:
    """Run the MLflow tracking server in the foreground (artifacts served through it); Ctrl-C stops it."""
    with _errors():
        from labkit.tracking import ServerError, ServerOptions, run_server

        options = ServerOptions(
            host=host,
            port=port,
            backend_store_uri=backend_store_uri,
            artifacts_destination=artifacts_destination,
            auth=auth,
            auth_db_uri=auth_db_uri,
            workers=workers,
            db_pool_size=db_pool_size,
            db_max_overflow=db_max_overflow,
            state_dir=state_dir,
            allowed_hosts=allowed_hosts,
        )
        code = run_server(options)
        if code != 0:
            raise ServerError(f"the MLflow server exited with code {code} (its messages are above)")


def _admin_url(url: str | None) -> str | None:
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")  # not minutes on a wrong --url
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    return url or os.environ.get("MLFLOW_TRACKING_URI")


@server_app.command("adduser")
def server_adduser(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The new user's name.", show_default=False)],
    url: UrlOpt = None,
) -> None:
    """Create a user (password from LABKIT_NEW_USER_PASSWORD, else asked for twice, hidden)."""
    with _errors():
        from labkit.tracking import add_user, check_admin

        server = check_admin(_admin_url(url))  # before asking for a password
        password = os.environ.get("LABKIT_NEW_USER_PASSWORD") or typer.prompt(
            f"Password for {name}", hide_input=True, confirmation_prompt=True
        )
        add_user(server, name, password)
        print(f"labkit: created user {name!r}; every user reads every experiment unless you grant otherwise")


@server_app.command("grant")
def server_grant(
    name: Annotated[str, typer.Argument(metavar="NAME", help="A user.", show_default=False)],
    experiment: Annotated[
        str, typer.Argument(metavar="EXPERIMENT", help="An experiment's name or id.", show_default=False)
    ],
    permission: Annotated[
        str, typer.Argument(metavar="PERMISSION", help="READ, EDIT or MANAGE.", show_default=False)
    ],
    url: UrlOpt = None,
) -> None:
    """Give a user READ, EDIT or MANAGE on one experiment (or change what they have)."""
    with _errors():
        from labkit.tracking import grant

        done = grant(_admin_url(url), name, experiment, permission)
        print(f"labkit: {done} {permission.upper()} for {name!r} on experiment {experiment!r}")
