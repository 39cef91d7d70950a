"""Preemption: SLURM's warning signal or SIGTERM → a checkpoint at the next training step → stop.

SLURM sends the profile's signal (``--signal=USR1@grace``) before the time limit, and SIGTERM
when a job is preempted, requeued by an admin (``scontrol requeue``) or cancelled. Lightning's
own SLURM handler saves a checkpoint but trains on until the job is killed, so the steps after
the checkpoint would be logged twice once the job resumes (and its SIGTERM handler ignores the
signal). labkit's callback instead saves ``checkpoints/preempted.ckpt`` at the next batch
boundary and stops at once: the resumed job continues from exactly there.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from labkit.errors import Preempted

__all__ = ["InterruptWatch", "Preempted", "PreemptionCallback", "ctrl_c_raises", "outside_training"]


class PreemptionCallback(Callback):
    """Saves ``path`` and raises :class:`Preempted` at the first training step after
    ``requeue_signal`` (the job then requeues itself) or SIGTERM (SLURM requeues or ends it)."""

    def __init__(self, path: Path, requeue_signal: str = "USR1", *, requeue: bool = True) -> None:
        self.path = path
        self.requeue = requeue  # False: the profile says --no-requeue; save, stop, and say so
        self.requeue_signal = signal.Signals[f"SIG{requeue_signal}"]
        self._received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self._received is None or signum == self.requeue_signal:
            self._received = signum

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after Lightning registered its own handlers (in Trainer._run), which these replace
        self._received = None
        for signum in (self.requeue_signal, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handler)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx + 1 >= trainer.num_training_batches:
            # the epoch's last batch: its validation runs next, then the epoch ends. Stopping
            # here would lose that validation (a resumed run starts the next epoch): stop at the
            # end of the epoch instead (on_train_epoch_end)
            return
        self._stop_if_signalled(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop_if_signalled(trainer)

    def _stop_if_signalled(self, trainer: pl.Trainer) -> None:
        received = self._received is not None
        if trainer.world_size > 1:  # every rank stops at the same step, or the collectives hang
            received = trainer.strategy.reduce_boolean_decision(received, all=False)
        if not received:
            return
        signum = self._received if self._received is not None else self.requeue_signal
        self.path.parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(self.path)
        requeue = self.requeue and signum == self.requeue_signal
        raise Preempted(signal.Signals(signum).name, self.path, requeue=requeue)


@contextmanager
def outside_training(requeue_signal: str = "USR1") -> Iterator[None]:
    """The requeue signal before or after the training loop (loading data, testing, uploading):
    nothing to checkpoint, and those steps end well within the grace time, so it is noted and
    ignored instead of killing the process (the default action of SIGUSR1) with the run RUNNING."""
    signum = signal.Signals[f"SIG{requeue_signal}"]

    def note(received: int, frame: FrameType | None) -> None:
        print(f"labkit: {signal.Signals(received).name} outside training: finishing first", file=sys.stderr)

    previous = signal.signal(signum, note)
    try:
        yield
    finally:
        signal.signal(signum, previous)


class InterruptWatch(Callback):
    """Notes a Ctrl-C inside ``trainer.fit``/``trainer.test``.

    Lightning (2.6, ``_call_and_handle_interrupt``) catches the ``KeyboardInterrupt``, calls the
    callbacks' ``on_exception``, tears down, sets SIGINT to be ignored and calls ``sys.exit(1)``:
    the caller sees a ``SystemExit(1)`` that looks like any other. :func:`ctrl_c_raises` uses
    what this callback saw to give the caller its ``KeyboardInterrupt`` back.
    """

    def __init__(self) -> None:
        self.interrupted = False

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, KeyboardInterrupt):
            self.interrupted = True


@contextmanager
def ctrl_c_raises(watch: InterruptWatch) -> Iterator[None]:
    """Around ``trainer.fit``/``trainer.test``: Lightning's ``sys.exit(1)`` after a Ctrl-C becomes
    ``KeyboardInterrupt`` again (the CLI says "interrupted", exit 130, and the run is marked
    KILLED), and the SIGINT handler Lightning replaced by "ignore" is put back, so that a second
    Ctrl-C while the run is being recorded still stops the process. Other exits, Lightning's
    ``SIGTERMException`` among them, pass through unchanged."""
    previous = signal.getsignal(signal.SIGINT)
    try:
        yield
    except SystemExit:
        if not watch.interrupted:
            raise
        raise KeyboardInterrupt from None
    finally:
        if (
            previous is not None
            and signal.getsignal(signal.SIGINT) is not previous
            and threading.current_thread() is threading.main_thread()
        ):
            signal.signal(signal.SIGINT, previous)
