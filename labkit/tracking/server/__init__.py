"""The group's MLflow tracking server: ``labkit server start | adduser | grant``.

:func:`run_server` runs ``python -m mlflow server`` in a child process (no mlflow import here)
with what :class:`ServerOptions` asked for; :func:`connection_cap` says how many database
connections it may hold. :func:`add_user` and :func:`grant` talk to a server started with
``--auth`` through mlflow's auth client, imported when called. :func:`mlflow_ui` is what
``labkit ui`` starts for a local store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_exports

__all__, _lazy_getattr = lazy_exports(
    __name__,
    {
        "labkit.errors": ("ServerError",),
        "labkit.tracking.server._admin": ("add_user", "check_admin", "grant"),
        "labkit.tracking.server._options": (
            "ENGINES_IN_PARENT",
            "ENGINES_PER_WORKER",
            "PERMISSIONS",
            "ServerOptions",
            "admin_username",
            "connection_cap",
            "default_state_dir",
            "writers_per_worker",
        ),
        "labkit.tracking.server._process": (
            "AuthFiles",
            "ServerCommand",
            "prepare_state",
            "run_server",
            "server_command",
        ),
        "labkit.tracking.server._ui": ("mlflow_ui",),
    },
)

if TYPE_CHECKING:  # the same names for type checkers; test_public_surface checks they agree
    from labkit.errors import ServerError as ServerError
    from labkit.tracking.server._admin import add_user as add_user
    from labkit.tracking.server._admin import check_admin as check_admin
    from labkit.tracking.server._admin import grant as grant
    from labkit.tracking.server._options import ENGINES_IN_PARENT as ENGINES_IN_PARENT
    from labkit.tracking.server._options import ENGINES_PER_WORKER as ENGINES_PER_WORKER
    from labkit.tracking.server._options import PERMISSIONS as PERMISSIONS
    from labkit.tracking.server._options import ServerOptions as ServerOptions
    from labkit.tracking.server._options import admin_username as admin_username
    from labkit.tracking.server._options import connection_cap as connection_cap
    from labkit.tracking.server._options import default_state_dir as default_state_dir
    from labkit.tracking.server._options import writers_per_worker as writers_per_worker
    from labkit.tracking.server._process import AuthFiles as AuthFiles
    from labkit.tracking.server._process import ServerCommand as ServerCommand
    from labkit.tracking.server._process import prepare_state as prepare_state
    from labkit.tracking.server._process import run_server as run_server
    from labkit.tracking.server._process import server_command as server_command
    from labkit.tracking.server._ui import mlflow_ui as mlflow_ui
else:
    __getattr__ = _lazy_getattr
