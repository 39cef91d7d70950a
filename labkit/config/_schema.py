"""The experiment schema: what an experiment file may contain, validated by pydantic.

An :class:`Experiment` is built once at the edge (CLI or Python API) and passed inward; it is
frozen, so nothing below the edge can change it behind the user's back.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    field_validator,
    model_validator,
)

from labkit.config._base import ClassPathSpec, PathText, Section, Seed, component_union
from labkit.config._data_specs import DATA_SPECS, DataSpec
from labkit.config._model_specs import MODEL_SPECS, ModelSpec
from labkit.config._search import CategoricalParam, SearchConfig, SearchParam
from labkit.config._task_specs import TASK_SPECS, TaskSpec
from labkit.config._uri import tracking_uri_problem

__all__ = [
    "CheckpointConfig",
    "DataConfig",
    "EarlyStoppingConfig",
    "Experiment",
    "ModelConfig",
    "NOTIFY_EVENTS",
    "NotifyConfig",
    "OptimizerConfig",
    "SchedulerConfig",
    "TaskConfig",
    "TrackingConfig",
    "TrainerConfig",
]

# A spec is added in one place: its class and its entry in the tuple (MODEL_SPECS...). The
# static types are the tuples' element types (what every member declares), the runtime ones
# the unions of their members, chosen at validation time by ``name`` / ``kind``.
if TYPE_CHECKING:
    ModelConfig = ModelSpec | ClassPathSpec
    DataConfig = DataSpec | ClassPathSpec
    TaskConfig = TaskSpec
else:
    ModelConfig = component_union(*MODEL_SPECS)
    DataConfig = component_union(*DATA_SPECS)
    TaskConfig = component_union(*TASK_SPECS, key="kind", class_path=False)

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$"

#: most epochs a run may ask for (a million: far beyond any real training)
MAX_EPOCHS = 10**6
#: largest learning rate or weight decay (far above any that trains; larger ones overflow float32)
MAX_RATE = 10.0
#: largest value a float may take where it reaches torch as a float32 (about 3.4e38 overflows)
MAX_FLOAT32 = 1.0e38


def _float32(value: float) -> float:
    if abs(value) > MAX_FLOAT32:
        raise ValueError(
            f"at most {MAX_FLOAT32:g} (larger values overflow the float32 that torch computes in)"
        )
    return value


#: a float that reaches torch as a float32
Float32 = Annotated[float, AfterValidator(_float32)]
#: a count of steps, batches or epochs between two events (validation, logging, decays...)
Steps = Annotated[int, Field(gt=0, le=MAX_EPOCHS)]


class SchedulerConfig(Section):
    """Learning-rate schedule, stepped once per epoch."""

    name: Literal["cosine", "step", "plateau"]
    step_size: Steps = Field(default=10, description="step: epochs between decays")
    gamma: float = Field(default=0.1, gt=0.0, lt=1.0, description="step/plateau: decay factor")
    patience: Annotated[int, Field(ge=0, le=MAX_EPOCHS)] = Field(
        default=5, description="plateau: epochs without improvement"
    )
    monitor: str = Field(default="val_loss", description="plateau: metric to watch")
    min_lr: float = Field(default=0.0, ge=0.0, le=MAX_RATE, description=f"0 <= min_lr <= {MAX_RATE:g}")


class OptimizerConfig(Section):
    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(default=1.0e-3, gt=0.0, le=MAX_RATE, description=f"0 < lr <= {MAX_RATE:g}")
    weight_decay: float = Field(
        default=0.0, ge=0.0, le=MAX_RATE, description=f"0 <= weight_decay <= {MAX_RATE:g}"
    )
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0, description="sgd only; 0 <= momentum < 1")
    nesterov: bool = Field(default=False, description="sgd only")
    scheduler: SchedulerConfig | None = None

    @field_validator("scheduler", mode="before")
    @classmethod
    def _scheduler_shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value  # ``scheduler: cosine``

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> OptimizerConfig:
        if self.name == "sgd" and self.nesterov and self.momentum <= 0:
            raise ValueError("nesterov: true needs momentum > 0")
        return self


class EarlyStoppingConfig(Section):
    monitor: str = "val_loss"
    mode: Literal["min", "max"] = "min"
    patience: Steps = 5
    min_delta: Float32 = Field(default=0.0, ge=0.0)


class CheckpointConfig(Section):
    monitor: str = "val_loss"
    mode: Literal["min", "max"] = "min"
    save_last: bool = True


_Limit = Annotated[int, Field(gt=0, le=2**31)] | Annotated[float, Field(gt=0.0, le=1.0)]


#: most CPU threads a run may ask for
MAX_THREADS = 4096


class TrainerConfig(Section):
    """The Lightning ``Trainer`` options users touch; the rest labkit sets for them."""

    max_epochs: Steps = 10
    min_epochs: Annotated[int, Field(ge=0, le=MAX_EPOCHS)] = 0
    max_time: str | None = Field(
        default=None, pattern=r"^\d{2}:\d{2}:\d{2}:\d{2}$", description='wall-time limit "DD:HH:MM:SS"'
    )
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    devices: (
        Annotated[int, Field(gt=0, le=1024)]
        | Literal["auto"]
        | Annotated[tuple[Annotated[int, Field(ge=0, lt=1024)], ...], Field(min_length=1)]
    ) = Field(default="auto", description="a count, auto, or a non-empty list of device indexes")
    num_nodes: Annotated[int, Field(gt=0, le=10_000)] = Field(
        default=1, description="set by labkit submit from the cluster profile"
    )
    strategy: Literal["auto", "ddp", "ddp_find_unused_parameters_true", "fsdp"] = "auto"
    precision: Literal["32-true", "16-mixed", "bf16-mixed", "bf16-true", "16-true", "64-true"] = "32-true"
    gradient_clip_val: Annotated[Float32, Field(gt=0.0)] | None = None
    gradient_clip_algorithm: Literal["norm", "value"] = "norm"
    accumulate_grad_batches: Steps = 1
    check_val_every_n_epoch: Steps = 1
    log_every_n_steps: Steps = 10
    limit_train_batches: _Limit = 1.0
    limit_val_batches: _Limit = 1.0
    limit_test_batches: _Limit = 1.0
    deterministic: bool = Field(default=True, description="bit-identical reruns on CPU")
    threads: Literal["auto"] | Annotated[int, Field(ge=1, le=MAX_THREADS)] = Field(
        default="auto",
        description="CPU threads for torch (intra- and inter-op); auto: the CPUs this process may use",
    )

    @field_validator("devices", mode="before")
    @classmethod
    def _some_devices(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)) and not value:
            raise ValueError(
                "an empty list names no device; give a count (e.g. 1), auto, or indexes such as [0, 1]"
            )
        return value

    @field_validator("max_time", mode="before")
    @classmethod
    def _max_time_is_text(cls, value: Any) -> Any:
        if isinstance(value, int):  # YAML reads an unquoted 00:12:00:00 as a base-60 number
            raise ValueError('write it in quotes, e.g. max_time: "00:12:00:00" (DD:HH:MM:SS)')
        return value

    early_stopping: EarlyStoppingConfig | None = None
    checkpoint: CheckpointConfig = CheckpointConfig()


class TrackingConfig(Section):
    experiment: str | None = Field(default=None, min_length=1, description="default: the name")
    uri: str | None = Field(
        default=None, description="default: $MLFLOW_TRACKING_URI, else sqlite:///<working dir>/mlflow.db"
    )
    run_name: str | None = Field(default=None, description="default: the experiment's name")
    tags: dict[str, str] = Field(default_factory=dict)
    log_checkpoint: bool = Field(default=True, description="upload the best checkpoint")
    mode: Literal["auto", "online", "offline"] = Field(
        default="auto",
        description="auto: log to the server, offline when it cannot be reached; online: an "
        "unreachable server is an error; offline: log to the run's spool only (labkit sync)",
    )
    drain_timeout: float = Field(
        default=60.0,
        ge=0,
        le=7 * 86400,
        description="seconds a finished run waits for its spool to reach the server",
    )
    system_every: float = Field(
        default=15.0,
        ge=0,
        le=3600,
        description="seconds between samples of the system metrics (CPU, memory, GPU, data wait), "
        "logged as system/...; 0: off",
    )

    @field_validator("uri")
    @classmethod
    def _a_tracking_store(cls, value: str | None) -> str | None:
        problem = None if value is None else tracking_uri_problem(value, must_exist=False)
        if problem:
            raise ValueError(problem)
        return value


#: what a notification can be sent for
NotifyEvent = Literal["finished", "failed", "nan", "preempted", "study_done"]
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = ("finished", "failed", "nan", "preempted", "study_done")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class NotifyConfig(Section):
    """Who is told when a run or study ends: a Slack/Mattermost incoming webhook (its URL a secret,
    read from the environment variable ``webhook_env`` names) and/or SLURM's mail for batch jobs."""

    on: tuple[NotifyEvent, ...] = Field(
        default=NOTIFY_EVENTS, min_length=1, description="the events to notify: " + ", ".join(NOTIFY_EVENTS)
    )
    webhook_env: str | None = Field(
        default=None,
        max_length=200,
        description="the environment variable that holds the incoming-webhook URL (never the URL)",
    )
    email: str | None = Field(
        default=None,
        pattern=r"^[^@\s,]+@[^@\s,]+$",
        max_length=320,
        description="address SLURM mails for batch jobs (--mail-user)",
    )

    @field_validator("on", mode="before")
    @classmethod
    def _one_event(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value  # ``on: failed``

    @field_validator("webhook_env")
    @classmethod
    def _an_environment_variable(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if "://" in value or not _ENV_NAME.fullmatch(value):
            raise ValueError(
                "name the environment variable that holds the webhook URL, e.g. webhook_env: "
                "LABKIT_WEBHOOK (export LABKIT_WEBHOOK=https://...); the URL is a secret and is "
                "never written in the experiment file"
            )
        return value

    @model_validator(mode="after")
    def _somewhere_to_send(self) -> NotifyConfig:
        if self.webhook_env is None and self.email is None:
            raise ValueError("name webhook_env, email or both: where to send the notifications")
        return self


class Experiment(Section):
    """One experiment: what to train, on what, how, and where to log it."""

    name: str = Field(pattern=_NAME, max_length=100)
    seed: Seed = 0
    task: TaskConfig
    model: ModelConfig
    data: DataConfig
    optimizer: OptimizerConfig = OptimizerConfig()
    trainer: TrainerConfig = TrainerConfig()
    tracking: TrackingConfig = TrackingConfig()
    runs_root: PathText = Field(default="runs", min_length=1, description="where run directories go")
    search: SearchConfig | None = Field(default=None, description="what `labkit tune` varies")
    notify: NotifyConfig | None = Field(default=None, description="notifications when runs and studies end")
    init_from: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="a run to start from (its best weights): an MLflow run id, a run key or its "
        "first 8 characters, or a run directory",
    )
    freeze: tuple[str, ...] = Field(
        default=(),
        description="submodules of the model whose parameters are not trained (e.g. encoder, net.0)",
    )

    @field_validator("init_from", mode="before")
    @classmethod
    def _init_from_is_text(cls, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):  # YAML read an id as a number
            raise ValueError(f'write the run in quotes, e.g. init_from: "{value}" (a run id is text)')
        if isinstance(value, str) and not value.strip():
            raise ValueError(
                "name a run: an MLflow run id, a run key or its first 8 characters, or a run directory"
            )
        return value

    @field_validator("freeze", mode="before")
    @classmethod
    def _freeze_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value  # ``freeze: encoder``

    @field_validator("freeze")
    @classmethod
    def _freeze_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return check_freeze(value)

    @model_validator(mode="before")
    @classmethod
    def _default_task_kind(cls, data: Any) -> Any:
        # ``task: classification`` is shorthand for ``task: {kind: classification}``
        if isinstance(data, dict) and isinstance(data.get("task"), str):
            data = {**data, "task": {"kind": data["task"]}}
        return data

    @model_validator(mode="after")
    def _anomaly_cuts_on_raw_mass(self) -> Experiment:
        if self.task.kind == "anomaly" and getattr(self.data, "standardize", False):
            raise ValueError(
                "data.standardize: the anomaly task cuts its signal region on the raw mass column; "
                "set data.standardize: false (the task standardises the other features itself)"
            )
        return self

    @model_validator(mode="after")
    def _sets_need_a_set_model(self) -> Experiment:
        # the same rule labkit.runner checks on the data it loaded; here before any run directory
        if isinstance(self.model, ClassPathSpec) or isinstance(self.data, ClassPathSpec):
            return self
        sets = bool(getattr(self.data, "constituents", None))
        reads_sets = bool(getattr(type(self.model), "reads_sets", False))
        name = getattr(self.model, "name", "")
        set_models = ", ".join(
            s.model_fields["name"].annotation.__args__[0]  # type: ignore[union-attr]
            for s in MODEL_SPECS
            if getattr(s, "reads_sets", False)
        )
        if sets and self.task.kind not in _SET_TASKS:
            raise ValueError(
                f"data.constituents: the {self.task.kind} task cannot use constituents; they work with "
                f"task.kind {' or '.join(_SET_TASKS)} (remove data.constituents)"
            )
        if sets and not reads_sets:
            raise ValueError(
                f"model.name: {name!r} reads one array per event, but data.constituents gives named "
                f"inputs (features and constituents); choose a set model: {set_models} "
                "(or remove data.constituents)"
            )
        if reads_sets and not sets and self.data.name in ("file", "simulated"):
            raise ValueError(
                f"model.name: {name!r} reads per-event sets, but the data give one array per event; name "
                "them in data.constituents, e.g. {tracks: {dataset: tracks, fields: [d0, z0], valid: valid, "
                "max: 40}}"
            )
        if reads_sets and self.task.kind not in _SET_TASKS:
            raise ValueError(
                f"model.name: {name!r} works with task.kind {' or '.join(_SET_TASKS)}, not {self.task.kind}"
            )
        return self

    @model_validator(mode="after")
    def _search_paths_exist(self) -> Experiment:
        if self.search is None:
            return self
        base = self.model_dump(mode="json", exclude={"search"})
        problems = []
        for path, param in self.search.params.items():
            problem = _check_search_path(base, path, param)
            if problem:
                problems.append(f"search.params.{path}: {problem}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def to_dict(self) -> dict[str, Any]:
        """The experiment as plain YAML-able data (what ``config.yaml`` of a run holds)."""
        return self.model_dump(mode="json")


_NOT_SEARCHABLE = ("name", "search", "tracking", "runs_root")

#: the task kinds whose models may read named inputs (event features and constituents)
_SET_TASKS = ("classification", "regression")

_MODULE_PATH = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")


def check_freeze(names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` if each is a submodule path (``encoder``, ``net.0``) named once, none inside
    another; else ValueError saying which entry is wrong."""
    seen: list[str] = []
    for name in names:
        if not _MODULE_PATH.match(name):
            raise ValueError(
                f"{name!r} is not a submodule name; write names such as encoder or dotted paths such as net.0"
            )
        if name in seen:
            raise ValueError(f"{name!r} is listed twice")
        outer = next((s for s in seen if name.startswith(s + ".") or s.startswith(name + ".")), None)
        if outer is not None:
            inner, whole = sorted((name, outer), key=len, reverse=True)
            raise ValueError(f"{inner!r} lies inside {whole!r}, which is frozen whole; list only {whole!r}")
        seen.append(name)
    return names


def _check_search_path(base: dict[str, Any], path: str, param: SearchParam) -> str | None:
    """Why ``path`` cannot be searched with ``param`` (None if it can)."""
    from labkit.errors import did_you_mean

    keys = path.split(".")
    if keys[0] in _NOT_SEARCHABLE:
        return f"{keys[0]!r} cannot be searched"
    node: Any = base
    for depth, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            where = ".".join(keys[:depth]) or "the experiment"
            choices = list(node) if isinstance(node, dict) else []
            return f"no key {key!r} in {where}{did_you_mean(key, choices)}"
        node = node[key]
    values = param.choices if isinstance(param, CategoricalParam) else [param.low, param.high]
    from pydantic import ValidationError

    from labkit.config._load import format_validation_error

    for value in values:
        try:
            Experiment.model_validate(_with_value(base, keys, value))
        except ValidationError as exc:
            return f"the value {value!r} is not valid there: " + "; ".join(format_validation_error(exc))
    return None


def _with_value(base: dict[str, Any], keys: list[str], value: Any) -> dict[str, Any]:
    import copy

    out = copy.deepcopy(base)
    node = out
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return out
