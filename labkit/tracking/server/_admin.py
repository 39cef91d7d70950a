"""``labkit server adduser | grant``: users and their permissions on a server started with
``--auth``, through mlflow's auth client (imported when called). Admin credentials come from
``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from labkit.errors import ServerError, did_you_mean
from labkit.tracking._provenance import redact_uri
from labkit.tracking.server._options import (
    ADMIN_PASSWORD_VAR,
    ADMIN_USERNAME_VAR,
    CLIENT_PASSWORD_VAR,
    CLIENT_USERNAME_VAR,
    MIN_PASSWORD_LENGTH,
    PERMISSIONS,
)

__all__ = ["add_user", "check_admin", "grant"]


def _check_url(url: str | None) -> str:
    if not url:
        raise ServerError("no server: give --url http://HOST:PORT or set MLFLOW_TRACKING_URI")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ServerError(f"--url {redact_uri(url)!r}: give the server's http:// or https:// address")
    if parts.username or parts.password:
        raise ServerError(
            f"--url {redact_uri(url)!r}: no credentials in URLs; set {CLIENT_USERNAME_VAR} and "
            f"{CLIENT_PASSWORD_VAR} instead"
        )
    return url.rstrip("/")


def check_admin(url: str | None) -> str:
    """The server's URL, checked, once the admin credentials are known to be in the environment."""
    server = _check_url(url)
    _check_admin_credentials()
    return server


def _auth_client(server: str) -> Any:
    import warnings

    with warnings.catch_warnings():  # mlflow.server's import chain warns about Starlette's WSGI
        warnings.filterwarnings("ignore", message=".*starlette.middleware.wsgi is deprecated")
        from labkit.tracking._mlflow import AuthServiceClient

    return AuthServiceClient(server)


def _check_admin_credentials() -> None:
    missing = [v for v in (CLIENT_USERNAME_VAR, CLIENT_PASSWORD_VAR) if not os.environ.get(v)]
    if missing:
        raise ServerError(
            f"set {' and '.join(missing)} to an admin's user name and password (the server's first "
            f"admin is {ADMIN_USERNAME_VAR}, default 'admin', with {ADMIN_PASSWORD_VAR})"
        )


@contextlib.contextmanager
def _server_errors(url: str) -> Iterator[None]:
    """MLflow's REST errors → ServerError with what to do about them."""
    from labkit.tracking._mlflow import MlflowException

    try:
        yield
    except MlflowException as exc:
        code = str(getattr(exc, "error_code", ""))
        text = str(exc)
        if "UNAUTHENTICATED" in code or " 401" in text:
            raise ServerError(
                f"{url} refused the credentials in {CLIENT_USERNAME_VAR}/{CLIENT_PASSWORD_VAR}"
            ) from None
        if "PERMISSION_DENIED" in code or " 403" in text:
            raise ServerError(
                f"{url}: user {os.environ.get(CLIENT_USERNAME_VAR)!r} may not do this (it needs an admin)"
            ) from None
        if "ENDPOINT_NOT_FOUND" in code or " 404" in text:
            raise ServerError(
                f"{url} has no user management: start it with labkit server start --auth"
            ) from None
        if "Failed to establish a new connection" in text or "Max retries exceeded" in text:
            raise ServerError(f"cannot reach {url}: is the server running, and is the URL right?") from None
        raise ServerError(f"{url}: {text.splitlines()[0] if text else type(exc).__name__}") from None
    except OSError as exc:  # requests' ConnectionError is one
        raise ServerError(f"cannot reach {url}: {exc}") from None


def add_user(url: str | None, name: str, password: str) -> None:
    """Create user ``name`` on the server at ``url`` (admin credentials from the environment)."""
    server = _check_url(url)
    if not name or name != name.strip() or ":" in name:
        raise ServerError(f"user name {name!r}: give a name without spaces at its ends or ':'")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ServerError(
            f"the password for {name!r} is {len(password)} characters long; MLflow needs at least "
            f"{MIN_PASSWORD_LENGTH}"
        )
    _check_admin_credentials()
    from labkit.tracking._mlflow import MlflowException

    client = _auth_client(server)
    with _server_errors(server):
        try:
            client.create_user(name, password)
        except MlflowException as exc:
            if "RESOURCE_ALREADY_EXISTS" in str(getattr(exc, "error_code", "")):
                raise ServerError(f"user {name!r} exists already on {server}") from None
            raise


def _permission(permission: str) -> str:
    value = permission.strip().upper()
    if value not in PERMISSIONS:
        hint = did_you_mean(value, PERMISSIONS)
        raise ServerError(f"permission {permission!r}{hint}: choose one of {', '.join(PERMISSIONS)}")
    return value


def _experiment_id(server: str, experiment: str) -> str:
    from labkit.tracking._mlflow import MlflowClient, MlflowException

    client = MlflowClient(tracking_uri=server)
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        return str(found.experiment_id)
    if experiment.isdigit():
        try:
            return str(client.get_experiment(experiment).experiment_id)
        except MlflowException as exc:
            if "RESOURCE_DOES_NOT_EXIST" not in str(getattr(exc, "error_code", "")):
                raise
    names = [e.name for e in client.search_experiments(max_results=1000)]
    shown = ", ".join(sorted(names)[:20]) + (", ..." if len(names) > 20 else "")
    raise ServerError(
        f"no experiment {experiment!r} on {server}{did_you_mean(experiment, names)}; "
        f"experiments: {shown or '(none yet)'}"
    )


def grant(url: str | None, name: str, experiment: str, permission: str) -> str:
    """Give user ``name`` ``permission`` (READ, EDIT or MANAGE) on ``experiment`` (a name or an id).

    Creates the grant, or changes it if the user has one on that experiment. Returns
    ``"created"`` or ``"updated"``.
    """
    server = _check_url(url)
    level = _permission(permission)
    _check_admin_credentials()
    from labkit.tracking._mlflow import MlflowException

    def exists(exc: MlflowException) -> bool:
        return "RESOURCE_ALREADY_EXISTS" in str(getattr(exc, "error_code", ""))

    client = _auth_client(server)
    with _server_errors(server):
        try:
            client.get_user(name)
        except MlflowException as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")):
                raise ServerError(
                    f"no user {name!r} on {server}; create it with: labkit server adduser {name}"
                ) from None
            raise
        experiment_id = _experiment_id(server, experiment)
        if hasattr(client, "grant_user_permission"):  # newer MLflow (3.17): one API for all resources
            try:
                client.grant_user_permission(name, "experiment", experiment_id, level)
                return "created"
            except MlflowException as exc:
                if not exists(exc):
                    raise
            # no update call for a user's own grant: replace it (in between, the default READ holds)
            client.revoke_user_permission(name, "experiment", experiment_id)
            client.grant_user_permission(name, "experiment", experiment_id, level)
            return "updated"
        legacy: Any = client  # older MLflow: per-resource endpoints
        try:
            legacy.create_experiment_permission(experiment_id, name, level)
            return "created"
        except MlflowException as exc:
            if not exists(exc):
                raise
        legacy.update_experiment_permission(experiment_id, name, level)
        return "updated"
