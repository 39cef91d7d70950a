"""The one module of labkit that imports mlflow, and only on first use of a name.

Every other module of :mod:`labkit.tracking` takes its mlflow names from here, inside the
function that needs them (``from labkit.tracking._mlflow import MlflowException``): importing
this module, or any labkit package, loads no mlflow; asking it for a name loads the mlflow
module that holds it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow.entities import Metric, Param, RunTag, ViewType
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.client import AuthServiceClient
    from mlflow.tracking import MlflowClient
    from mlflow.utils.rest_utils import http_request, verify_rest_response

__all__ = [
    "AuthServiceClient",
    "Metric",
    "MlflowClient",
    "MlflowException",
    "Param",
    "RunTag",
    "ViewType",
    "http_request",
    "verify_rest_response",
]

_WHERE = {
    "AuthServiceClient": "mlflow.server.auth.client",
    "Metric": "mlflow.entities",
    "MlflowClient": "mlflow.tracking",
    "MlflowException": "mlflow.exceptions",
    "Param": "mlflow.entities",
    "RunTag": "mlflow.entities",
    "ViewType": "mlflow.entities",
    "http_request": "mlflow.utils.rest_utils",
    "verify_rest_response": "mlflow.utils.rest_utils",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
