"""Render a profile and a job into an sbatch script (Jinja2).

Values that come from users reach the shell only through the ``q`` and ``shell`` filters
(:func:`shlex.quote`); ``#SBATCH`` lines hold only values the profile schema or
:func:`directive_value` has checked, because sbatch reads them without a shell.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from labkit.cluster._profile import Profile
from labkit.errors import ConfigError

__all__ = ["JobSpec", "directive_value", "render_script"]

_SAFE_DIRECTIVE = re.compile(r"^[A-Za-z0-9_.,:%@+=/\-]+$")


@dataclass(frozen=True)
class JobSpec:
    """One job: what runs (``command``, through ``launcher``), where, and what it is called."""

    job_name: str
    command: Sequence[str]  #: labkit's arguments, e.g. ["run", "cfg.yaml", "--run-dir", "..."]
    launcher: Sequence[str]  #: what runs labkit, e.g. ["/venv/bin/python", "-m", "labkit"]
    workdir: Path  #: the job's working directory (where it was submitted from)
    output: Path  #: the log file pattern (%j job id, %A_%a array task)
    array: str | None = None  #: e.g. "0-3"
    environment: dict[str, str] = field(default_factory=dict)
    notes: Sequence[str] = ()  #: comment lines at the top of the script


def directive_value(value: str | Path, what: str) -> str:
    """``value`` fit for an ``#SBATCH`` line: plain, or in double quotes when it has spaces."""
    text = str(value)
    if _SAFE_DIRECTIVE.match(text):
        return text
    if any(c in text for c in '"\n\r\\`$') or not text.isprintable():
        raise ConfigError(f"{what} {text!r} cannot go on an #SBATCH line (quotes, $, backslash or newline)")
    return f'"{text}"'


def render_script(profile: Profile, profile_path: Path | None, job: JobSpec) -> str:
    """The sbatch script for ``job`` on ``profile``'s site."""
    import jinja2

    loaders: list[jinja2.BaseLoader] = [
        jinja2.PrefixLoader({"labkit": jinja2.PackageLoader("labkit.cluster")})
    ]
    if profile_path is not None:
        loaders.insert(0, jinja2.FileSystemLoader(str(profile_path.parent)))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["q"] = lambda value: shlex.quote(str(value))
    env.filters["shell"] = lambda values: shlex.join(str(v) for v in values)
    name = profile.template or "labkit/slurm.sh.j2"
    try:
        template = env.get_template(name)
    except jinja2.TemplateNotFound:
        where = profile_path.parent if profile_path else "the profile's folder"
        raise ConfigError(f"template: {name!r} not found in {where}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"template {exc.filename or name}, line {exc.lineno}: {exc.message}") from None
    launcher = list(job.launcher)
    if profile.apptainer is not None:
        a = profile.apptainer
        launcher = [a.executable, "exec", *a.options, a.image, *launcher]
    srun = ["--kill-on-bad-exit=1"] if profile.world_size > 1 else []
    notes = [_comment(n) for n in job.notes]
    try:
        return template.render(
            profile=profile,
            notes=notes,
            job_name=directive_value(job.job_name, "the job name"),
            output=directive_value(job.output, "the log path"),
            workdir=directive_value(job.workdir, "the working directory"),
            array=directive_value(job.array, "the array range") if job.array else None,
            directives=profile.directives(),
            environment={**profile.environment, **job.environment},
            srun=srun,
            launcher=launcher,
            command=list(job.command),
        )
    except jinja2.TemplateError as exc:
        raise ConfigError(f"template {name}: {exc}") from None


def _comment(text: str) -> str:
    """A comment line: whatever a user typed cannot start a new line of the script."""
    return " ".join(text.split())
