"""Site profiles: what a cluster needs to know about a job, validated, and mapped to sbatch flags.

A profile is a YAML file (``cluster/<site>.yaml``). Its job fields are *generic* names; the one
table :data:`SBATCH_FLAGS` maps each to its sbatch flag (as submitit does), so a profile never
holds raw scheduler syntax except in ``sbatch_extra`` and its ``setup`` shell lines.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from typing_extensions import Self

from labkit.config import Section
from labkit.errors import ConfigError, ExperimentFileError, LabkitError, did_you_mean

if TYPE_CHECKING:
    from labkit.config import NotifyConfig

__all__ = ["SBATCH_FLAGS", "Apptainer", "Preemption", "Profile", "load_profile"]

#: Generic job field → sbatch flag. Every other job field is an error that lists these.
SBATCH_FLAGS: dict[str, str] = {
    "partition": "--partition",
    "account": "--account",
    "qos": "--qos",
    "time": "--time",
    "nodes": "--nodes",
    "tasks_per_node": "--ntasks-per-node",
    "cpus_per_task": "--cpus-per-task",
    "gpus_per_node": "--gres",  # gres=gpu[:gpu_type]:N
    "mem": "--mem",
    "mem_per_cpu": "--mem-per-cpu",
    "constraint": "--constraint",
    "hint": "--hint",
    "exclusive": "--exclusive",
    "reservation": "--reservation",
    "mail_type": "--mail-type",
    "mail_user": "--mail-user",
}

#: which ``notify.on`` events SLURM's mail types (``--mail-type``) tell of, per kind of job: a
#: training run; a study's worker array (a trial's end is not its job's: only a crash or a
#: requeue); the job that summarises a study once its workers ended
MAIL_TYPES: dict[str, dict[str, str]] = {
    "run": {"finished": "END", "failed": "FAIL", "nan": "FAIL", "preempted": "REQUEUE"},
    "workers": {"failed": "FAIL", "preempted": "REQUEUE"},
    "summary": {"study_done": "END", "failed": "FAIL"},
}

# one line, no quotes or shell metacharacters that could end a #SBATCH line early
_WORD = r"^[A-Za-z0-9_.,:@%+=/\-]+$"
_CONSTRAINT = r"^[A-Za-z0-9_.,:|&*\[\]()\-]+$"  # SLURM's feature expressions: a100&ib, [v100|a100]
_MEM = r"^\d+[KMGT]?$"
# SLURM's time formats: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS
_TIME = r"^(\d+|\d+:\d{2}|\d+:\d{2}:\d{2}|\d+-\d+|\d+-\d+:\d{2}|\d+-\d+:\d{2}:\d{2})$"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: bounds matching the experiment's: trainer.num_nodes <= MAX_NODES, trainer.devices <= MAX_TASKS
MAX_NODES = 10_000
MAX_TASKS = 1024  #: tasks (and GPUs) per node
MAX_CPUS = 4096  #: CPUs per task
MAX_TIME_SECONDS = 366 * 86400  #: a year: longer than any site's time limit
_OVERRIDE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*=")  # as labkit.config reads them


def time_seconds(value: str) -> int:
    """SLURM's ``--time`` text in seconds (``"1-02:00:00"`` → 93600)."""
    days, _, clock = value.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    if days:  # D-HH[:MM[:SS]]
        parts += [0] * (3 - len(parts))
        h, m, s = parts
        return int(days) * 86400 + h * 3600 + m * 60 + s
    if len(parts) == 1:  # MM
        return parts[0] * 60
    if len(parts) == 2:  # MM:SS
        return parts[0] * 60 + parts[1]
    h, m, s = parts
    return h * 3600 + m * 60 + s


class Preemption(Section):
    """What the job does before SLURM stops it (time limit, preemption, ``scontrol requeue``).

    SLURM sends ``signal`` ``grace`` seconds before the time limit; labkit then writes a
    checkpoint at the next training step, requeues the job, and the restarted job resumes from
    that checkpoint into the same MLflow run. SIGTERM (preemption, requeue by an admin) also
    writes the checkpoint.
    """

    signal: Literal["USR1", "USR2"] = "USR1"
    grace: Annotated[int, Field(gt=0, le=MAX_TIME_SECONDS, strict=True)] = Field(
        default=120, description="seconds before the time limit"
    )
    requeue: bool = True


class Apptainer(Section):
    """Run labkit inside an Apptainer (Singularity) image: ``apptainer exec OPTIONS IMAGE ...``."""

    image: str = Field(min_length=1)
    options: list[str] = Field(default_factory=lambda: ["--nv"], description="e.g. --nv, --bind /scratch")
    executable: str = Field(default="apptainer", pattern=_WORD)


class Profile(Section):
    """A site: where jobs go, what they get, how the node is set up."""

    name: str = Field(pattern=_NAME, max_length=64)
    description: str = ""
    template: str | None = Field(default=None, description="a Jinja2 template beside the profile")
    # -- generic job fields (SBATCH_FLAGS) -------------------------------------------------------
    partition: str | None = Field(default=None, pattern=_WORD)
    account: str | None = Field(default=None, pattern=_WORD)
    qos: str | None = Field(default=None, pattern=_WORD)
    time: str = Field(
        default="01:00:00", pattern=_TIME, max_length=32, description="D-HH:MM:SS, HH:MM:SS or MM"
    )
    nodes: Annotated[int, Field(gt=0, le=MAX_NODES, strict=True)] = 1
    tasks_per_node: Annotated[int, Field(gt=0, le=MAX_TASKS, strict=True)] | None = Field(
        default=None, description="default: gpus_per_node, else 1"
    )
    cpus_per_task: Annotated[int, Field(gt=0, le=MAX_CPUS, strict=True)] | None = None
    gpus_per_node: Annotated[int, Field(ge=0, le=MAX_TASKS, strict=True)] = 0
    gpu_type: str | None = Field(default=None, pattern=_WORD, description="gres type, e.g. a100")
    mem: str | None = Field(default=None, pattern=_MEM, max_length=16, description="per node, e.g. 64G")
    mem_per_cpu: str | None = Field(default=None, pattern=_MEM, max_length=16)
    constraint: str | None = Field(default=None, pattern=_CONSTRAINT, description="-C features")
    hint: Literal["nomultithread", "multithread", "compute_bound", "memory_bound"] | None = None
    exclusive: bool = False
    reservation: str | None = Field(default=None, pattern=_WORD)
    mail_type: str | None = Field(default=None, pattern=_WORD)
    mail_user: str | None = Field(default=None, pattern=_WORD)
    sbatch_extra: list[str] = Field(
        default_factory=list, description="more directives, e.g. --licenses=scratch"
    )
    # -- the node --------------------------------------------------------------------------------
    setup: list[str] = Field(default_factory=list, description="shell lines: module load, venv activation")
    environment: dict[str, str] = Field(default_factory=dict)
    apptainer: Apptainer | None = None
    python: str | None = Field(
        default=None, description="the command that runs labkit's Python on the node; default: this Python"
    )
    overrides: list[str] = Field(
        default_factory=list,
        description="experiment overrides for this site, e.g. trainer.precision=bf16-mixed",
    )
    preemption: Preemption = Preemption()

    @field_validator("time", mode="before")
    @classmethod
    def _time_is_text(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            # YAML reads an unquoted 12:00:00 as the number 43200 (base 60): ambiguous, so refused
            raise ValueError(
                f'write it in quotes, e.g. time: "12:00:00" or time: "90" for minutes (got the number '
                f"{value}: YAML reads an unquoted 12:00:00 as 43200)"
            )
        return value

    @field_validator("time")
    @classmethod
    def _time_bounded(cls, value: str) -> str:
        if time_seconds(value) > MAX_TIME_SECONDS:
            raise ValueError(f"{value!r} is longer than a year (366 days); sites allow far less")
        if time_seconds(value) == 0:
            raise ValueError(f'{value!r} is no time at all; e.g. time: "01:00:00"')
        return value

    @field_validator("sbatch_extra")
    @classmethod
    def _directives(cls, value: list[str]) -> list[str]:
        for item in value:
            if not re.fullmatch(r"--[a-z][a-z0-9-]*(=[^\s\"'\\`$;]+)?", item):
                raise ValueError(
                    f"{item!r} is not one sbatch flag like --licenses=scratch (no spaces or quotes)"
                )
        return value

    @field_validator("setup", "description", "python")
    @classmethod
    def _one_line_each(cls, value: Any) -> Any:
        items = value if isinstance(value, list) else [value]
        if any(isinstance(v, str) and ("\n" in v or "\r" in v) for v in items):
            raise ValueError("one line per entry (no newline inside a value)")
        return value

    @field_validator("environment")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _ENV_KEY.match(key):
                raise ValueError(f"{key!r} is not an environment variable name")
        return value

    @field_validator("overrides")
    @classmethod
    def _overrides_parse(cls, value: list[str]) -> list[str]:
        """Each entry one ``dotted.key=value`` whose value reads as YAML: a typo fails here,
        naming the profile, not later inside the experiment's overrides."""
        from labkit.config import parse_value

        for item in value:
            if not _OVERRIDE.match(item):
                raise ValueError(
                    f"{item!r} is not of the form KEY=VALUE with a dotted KEY, "
                    "e.g. trainer.precision=bf16-mixed"
                )
            try:
                parse_value(item.partition("=")[2], what=repr(item if len(item) <= 80 else item[:77] + "..."))
            except LabkitError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.gpu_type and not self.gpus_per_node:
            raise ValueError("gpu_type is set but gpus_per_node is 0")
        if self.mem and self.mem_per_cpu:
            raise ValueError("set mem or mem_per_cpu, not both (sbatch rejects both)")
        if self.preemption.grace >= time_seconds(self.time):
            raise ValueError(
                f"preemption.grace ({self.preemption.grace} s) must be shorter than time ({self.time})"
            )
        return self

    # -- what it means for a job -----------------------------------------------------------------
    def with_mail(self, notify: NotifyConfig | None, job: Literal["run", "workers", "summary"]) -> Profile:
        """This profile with ``mail_user`` = ``notify.email`` and ``mail_type`` = the SLURM mail
        types of the ``notify.on`` events for that kind of ``job`` (:data:`MAIL_TYPES`); itself
        when ``notify`` names no email or none of its events is mailed for that job."""
        if notify is None or notify.email is None:
            return self
        types = MAIL_TYPES[job]
        mailed = list(dict.fromkeys(kind for event, kind in types.items() if event in notify.on))
        if not mailed:
            return self
        if not re.match(_WORD, notify.email):
            raise ConfigError(
                f"notify.email {notify.email!r}: cannot go on an #SBATCH line; use an address of "
                "letters, digits and . _ + - @ only"
            )
        return self.model_copy(update={"mail_user": notify.email, "mail_type": ",".join(mailed)})

    @property
    def ntasks_per_node(self) -> int:
        return self.tasks_per_node or max(1, self.gpus_per_node)

    @property
    def world_size(self) -> int:
        return self.nodes * self.ntasks_per_node

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    def directives(self) -> list[str]:
        """The ``#SBATCH`` flags of this profile, in the table's order."""
        out: list[str] = []
        for field, flag in SBATCH_FLAGS.items():
            value = getattr(self, field)
            if field == "gpus_per_node":
                if value:
                    out.append(
                        f"{flag}=gpu:{self.gpu_type}:{value}" if self.gpu_type else f"{flag}=gpu:{value}"
                    )
            elif field == "tasks_per_node":
                out.append(f"{flag}={self.ntasks_per_node}")
            elif field == "exclusive":
                if value:
                    out.append(flag)
            elif value is not None:
                out.append(f"{flag}={value}")
        p = self.preemption
        out.append(f"--signal={p.signal}@{p.grace}")
        out.append("--requeue" if p.requeue else "--no-requeue")
        out.append("--open-mode=append")  # a requeued job adds to its log instead of truncating it
        return out + list(self.sbatch_extra)


def load_profile(
    where: str | os.PathLike[str],
    overrides: Sequence[str] = (),
    *,
    cwd: str | os.PathLike[str] | None = None,
) -> tuple[Profile, Path]:
    """Load a profile by path (``cluster/site.yaml``) or by name (``site`` → ``./cluster/site.yaml``),
    apply ``KEY=VALUE`` overrides (``time=02:00:00``, ``tasks_per_node=2``) and validate."""
    from omegaconf import OmegaConf

    from labkit.config import format_validation_error

    path = _find(Path(where), Path(cwd or os.getcwd()))
    try:
        cfg = OmegaConf.load(path)
    except Exception as exc:  # noqa: BLE001 - YAML and OS errors alike: the file is unusable
        raise ExperimentFileError(f"{path}: cannot read the cluster profile: {_one_line(exc)}") from None
    try:
        data = OmegaConf.to_container(cfg, resolve=True)
    except Exception as exc:  # noqa: BLE001 - an interpolation ${...} that names nothing, a bad resolver
        raise ConfigError(
            f"cluster profile {path}: {_one_line(exc)} (an interpolation ${{...}} must name a key of the "
            "profile, e.g. ${partition}, or ${oc.env:VAR} for an environment variable that is set)"
        ) from None
    if not isinstance(data, dict):
        raise ExperimentFileError(f"{path}: a cluster profile must be a mapping of keys to values")
    if not data:
        raise ExperimentFileError(
            f"cluster profile {path} is empty; a profile needs at least the site's job fields, e.g. "
            f'partition: gpu and time: "04:00:00" (see cluster/slurm-local.yaml in labkit\'s checkout)'
        )
    for item in overrides:
        _override(data, item)
    data.setdefault("name", path.stem)
    try:
        return Profile.model_validate(data), path
    except ValidationError as exc:
        lines = format_validation_error(exc, Profile)
        raise ConfigError(f"cluster profile {path}:\n  " + "\n  ".join(lines)) from None


#: profile sections that ``--slurm section.key=value`` may reach into
_NESTED: dict[str, type[Section] | None] = {
    "preemption": Preemption,
    "apptainer": Apptainer,
    "environment": None,
}


def _override(data: dict[Any, Any], item: str) -> None:
    """Apply one ``--slurm KEY=VALUE`` to the profile's data; ConfigError naming the key when it
    is not a profile field (the job fields of :data:`SBATCH_FLAGS` and the profile's others), or
    the value when it is not a plain YAML value."""
    from labkit.config import parse_value

    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--slurm {item!r}: write KEY=VALUE, e.g. --slurm time=02:00:00")
    top, *rest = key.split(".")
    fields = list(Profile.model_fields)
    if top not in Profile.model_fields:
        others = [f for f in fields if f not in SBATCH_FLAGS]
        raise ConfigError(
            f"--slurm {item!r}: {top}: unknown key{did_you_mean(top, fields)}; valid keys here: "
            f"{', '.join(SBATCH_FLAGS)} (job fields), {', '.join(others)}"
        )
    if rest:
        if top not in _NESTED:
            raise ConfigError(f"--slurm {item!r}: {top} takes no sub-key; write --slurm {top}=VALUE")
        section = _NESTED[top]
        if len(rest) > 1:
            raise ConfigError(
                f"--slurm {item!r}: {top} has one level of keys, e.g. --slurm {top}.{_example(top)}"
            )
        if section is not None and rest[0] not in section.model_fields:
            valid = list(section.model_fields)
            raise ConfigError(
                f"--slurm {item!r}: {key}: unknown key{did_you_mean(rest[0], valid)}; "
                f"valid keys here: {', '.join(valid)}"
            )
        node = data.get(top)
        if not isinstance(node, dict):
            node = data[top] = {}
        leaf = rest[0]
    else:
        node, leaf = data, top
    # YAML values (2, true, [a, b], {grace: 10}); times (02:00:00, 90 minutes) and environment
    # values stay text; a value YAML cannot read is an error naming the option
    if leaf == "time" or top == "environment":
        node[leaf] = value
    else:
        shown = item if len(item) <= 80 else item[:77] + "..."
        node[leaf] = parse_value(value, what=f"--slurm {shown!r}")


def _example(section: str) -> str:
    return {"preemption": "grace=300", "apptainer": "image=/path/to/image.sif"}.get(section, "VAR=value")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _find(where: Path, cwd: Path) -> Path:
    """The profile file ``where`` names: a path (relative to ``cwd``), or a name looked up as
    ``<cwd>/cluster/<name>.yaml``. Not found: the error says where it looked and how to point
    at a profile file instead."""
    folder = cwd / "cluster"
    names = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
    listing = f"; profiles in {folder}: {', '.join(names)}" if names else ""
    if where.suffix or len(where.parts) > 1:
        candidates = list(dict.fromkeys(c.absolute() for c in (where, cwd / where)))
        found = next((c for c in candidates if c.is_file()), None)
        if found is not None:
            return found.resolve()
        looked = " and ".join(map(str, candidates))
        if any(c.is_dir() for c in candidates):
            what = "is a directory, not a file"
        elif any(c.exists() for c in candidates):
            what = "is not a regular file (a device, a pipe or a socket)"
        else:
            what = "not found"
        raise ExperimentFileError(
            f"cluster profile {what}: {where}{did_you_mean(where.stem, names)} (looked for {looked}){listing}"
        )
    if where.is_file():  # a profile file without a suffix, here
        return where.resolve()
    candidate = folder / f"{where}.yaml"
    if candidate.is_file():
        return candidate
    searched = (
        f"looked for {candidate}"
        if folder.is_dir()
        else f"looked for {candidate}, but there is no folder {folder}"
    )
    raise ExperimentFileError(
        f"no cluster profile {str(where)!r}{did_you_mean(str(where), names)}{listing}; {searched} "
        f"(a name means ./cluster/NAME.yaml in the directory labkit runs in); give the profile's file "
        f"instead, e.g. --cluster /path/to/labkit/cluster/{where}.yaml"
    )
