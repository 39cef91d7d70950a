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
from typing import Any, Literal

from pydantic import Field, NonNegativeInt, PositiveInt, ValidationError, field_validator, model_validator
from typing_extensions import Self

from labkit.config._base import Section
from labkit.errors import ConfigError, ExperimentFileError, did_you_mean

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

# one line, no quotes or shell metacharacters that could end a #SBATCH line early
_WORD = r"^[A-Za-z0-9_.,:@%+=/\-]+$"
_CONSTRAINT = r"^[A-Za-z0-9_.,:|&*\[\]()\-]+$"  # SLURM's feature expressions: a100&ib, [v100|a100]
_MEM = r"^\d+[KMGT]?$"
# SLURM's time formats: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS
_TIME = r"^(\d+|\d+:\d{2}|\d+:\d{2}:\d{2}|\d+-\d+|\d+-\d+:\d{2}|\d+-\d+:\d{2}:\d{2})$"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
    grace: PositiveInt = Field(default=120, description="seconds before the time limit")
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
    time: str = Field(default="01:00:00", pattern=_TIME, description="D-HH:MM:SS, HH:MM:SS or MM")
    nodes: PositiveInt = 1
    tasks_per_node: PositiveInt | None = Field(default=None, description="default: gpus_per_node, else 1")
    cpus_per_task: PositiveInt | None = None
    gpus_per_node: NonNegativeInt = 0
    gpu_type: str | None = Field(default=None, pattern=_WORD, description="gres type, e.g. a100")
    mem: str | None = Field(default=None, pattern=_MEM, description="per node, e.g. 64G")
    mem_per_cpu: str | None = Field(default=None, pattern=_MEM)
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
    import yaml
    from omegaconf import OmegaConf

    from labkit.config._load import format_validation_error

    path = _find(Path(where), Path(cwd or os.getcwd()))
    try:
        cfg = OmegaConf.load(path)
    except Exception as exc:  # noqa: BLE001 - YAML and OS errors alike: the file is unusable
        raise ExperimentFileError(f"{path}: cannot read the cluster profile: {exc}") from None
    data = OmegaConf.to_container(cfg, resolve=True)
    if not isinstance(data, dict):
        raise ExperimentFileError(f"{path}: a cluster profile must be a mapping of keys to values")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--slurm {item!r}: write KEY=VALUE, e.g. --slurm time=02:00:00")
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        try:  # YAML values (2, true, [a, b]); times (02:00:00, 90 minutes) stay text
            node[leaf] = value if leaf == "time" or ":" in value else yaml.safe_load(value)
        except yaml.YAMLError:
            node[leaf] = value
    data.setdefault("name", path.stem)
    try:
        return Profile.model_validate(data), path
    except ValidationError as exc:
        lines = format_validation_error(exc, Profile)
        raise ConfigError(f"cluster profile {path}:\n  " + "\n  ".join(lines)) from None


def _find(where: Path, cwd: Path) -> Path:
    if where.is_file():
        return where.resolve()
    if where.suffix or len(where.parts) > 1:
        folder = where.parent if where.parent != Path() else cwd
        names = sorted(p.stem for p in (cwd / "cluster").glob("*.yaml"))
        hint = did_you_mean(where.stem, names)
        raise ExperimentFileError(
            f"cluster profile not found: {where}{hint}"
            + (f"; profiles in {cwd / 'cluster'}: {', '.join(names)}" if names else f" (looked in {folder})")
        )
    candidate = cwd / "cluster" / f"{where}.yaml"
    if candidate.is_file():
        return candidate
    names = sorted(p.stem for p in (cwd / "cluster").glob("*.yaml"))
    listing = f"; profiles in {cwd / 'cluster'}: {', '.join(names)}" if names else ""
    raise ExperimentFileError(f"no cluster profile {str(where)!r}{did_you_mean(str(where), names)}{listing}")
