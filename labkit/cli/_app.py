"""The ``labkit`` typer app and what every command shares: the argument and option types, the
guarded edge (:func:`_errors`: a :class:`~labkit.errors.LabkitError` is one line and exit 2,
anything else one line and exit 1), and writing a file a user named.

The commands live in the modules beside this one, one per flow; ``labkit.cli`` registers them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from labkit import __version__
from labkit.errors import LabkitError, Preempted

app = typer.Typer(
    name="labkit",
    help="Experiment files in, tracked Lightning runs out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


FileArg = Annotated[
    str, typer.Argument(metavar="FILE", help="The experiment file (YAML).", show_default=False)
]


OverridesArg = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="[KEY=VALUE]...",
        help="Dotted overrides merged over the file, e.g. trainer.max_epochs=3 model.hidden=[64,64] seed=7.",
        show_default=False,
    ),
]


ClusterOpt = Annotated[
    str,
    typer.Option(
        "--cluster",
        help="Site profile: a file (cluster/site.yaml) or a name in ./cluster/.",
        show_default=False,
    ),
]


SlurmOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--slurm",
        metavar="KEY=VALUE",
        help="Change a profile field for this job, e.g. --slurm time=02:00:00 --slurm tasks_per_node=2.",
        show_default=False,
    ),
]


RunsRootOpt = Annotated[
    Path, typer.Option("--runs-root", help="Where labkit keeps its runs and the list of submitted jobs.")
]


TrackingUriOpt = Annotated[
    str | None,
    typer.Option("--tracking-uri", help="MLflow server (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)."),
]


def _fail(message: str, code: int) -> NoReturn:
    print(f"labkit: error: {message}", file=sys.stderr)
    raise typer.Exit(code)


class _Flags:
    """Options of the ``labkit`` command itself, set by its callback."""

    debug = False  #: ``labkit --debug ...`` (or ``LABKIT_DEBUG=1``): show an unexpected error's traceback


_ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENAMETOOLONG: "file name too long",
}


@contextmanager
def _errors() -> Iterator[None]:
    """LabkitError → one message, exit 2. Anything else is a bug: one line and exit 1, with the
    traceback under ``--debug`` or when it came out of training (the user's own code)."""
    try:
        yield
    except LabkitError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted; the run is marked KILLED", 130)
    except (typer.Exit, typer.Abort):
        raise
    except SystemExit as exc:
        if type(exc).__name__ == "SIGTERMException":  # Lightning's, on SIGTERM during training
            _fail("terminated by SIGTERM; the run is marked KILLED", 128 + signal.SIGTERM)
        raise
    except Exception as exc:  # noqa: BLE001 - the last resort
        _unexpected(exc)
    except Preempted as exc:  # a BaseException: not an error, the checkpoint is saved
        if exc.requeue:
            print(f"labkit: {exc}; the job is requeued and resumes from it", file=sys.stderr)
            raise typer.Exit(0) from None
        _fail(f"{exc}; the run is marked KILLED and resumes from it if the job is requeued", 143)


def _unexpected(exc: Exception) -> NoReturn:
    """The last resort for an exception labkit did not turn into a LabkitError."""
    if isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS:
        where = f" writing {exc.filename}" if exc.filename else ""
        problem = _ENVIRONMENT_ERRNOS[exc.errno]
        _fail(f"{problem}{where} ({exc.strerror}); free space or fix the permissions", 2)
    if _from_training(exc):
        traceback.print_exc()
        _fail(
            "training failed with the error above (raised in the model's or module's code); "
            "the run is marked FAILED",
            1,
        )
    if _Flags.debug:
        traceback.print_exc()
        _fail("the command failed with the error above (a bug: please report it with this traceback)", 1)
    text = " ".join(str(exc).split()) or "(no message)"
    if len(text) > 300:
        text = text[:297] + "..."
    _fail(
        f"unexpected {type(exc).__name__}: {text} (labkit should have said what to fix; "
        "rerun with labkit --debug ... for the traceback and report it)",
        1,
    )


_TRAINING_MODULES = ("lightning.pytorch.loops", "lightning.pytorch.trainer")


def _from_training(exc: BaseException) -> bool:
    """Whether ``exc`` came out of Lightning's fit/test loops, i.e. from the user's own training
    code (a model's forward, a module's step): its traceback is what they need to see."""
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        name = frame.f_globals.get("__name__", "")
        if isinstance(name, str) and name.startswith(_TRAINING_MODULES):
            return True
    return False


def _version(value: bool) -> None:
    if value:
        print(f"labkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar="LABKIT_DEBUG",
            help="Print the traceback of an unexpected error (for a bug report).",
        ),
    ] = False,
) -> None:
    """Experiment files in, tracked Lightning runs out."""
    _Flags.debug = debug


def _write_output(output: Path, text: str, option: str = "-o") -> None:
    """Write ``text`` to the file a user named with ``option``: whole or not at all (a temporary
    file beside it, then renamed), and any problem one line naming the path."""
    if output.is_dir():
        raise LabkitError(f"{option} {output} is a directory; give the file to write")
    tmp = output.with_name(f".{output.name}.partial")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, output)
    except OSError as exc:
        raise LabkitError(
            f"{option} {output}: cannot write it ({exc.strerror or exc}); choose another path"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _importable_here() -> None:
    """Put the working directory first on ``sys.path``, as ``python -m`` does, so that a
    ``class_path: mymodels.Net`` next to the user's experiment imports with ``labkit`` too."""
    here = os.getcwd()
    if here not in sys.path:
        sys.path.insert(0, here)


def main() -> None:
    # GNU/LLVM OpenMP threads spin while they wait (OMP_WAIT_POLICY ACTIVE): on a node where other
    # processes run, torch's threads then burn the CPUs those processes need, and a fit can take
    # 10-30x longer (docs/benchmarks.md section 9). Waiting threads sleep instead unless the user
    # chose otherwise; it must be set before torch loads, so here, at the edge.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    app()
