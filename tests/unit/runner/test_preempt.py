"""How Ctrl-C and other exits get out of a fit (no training here; the preemption runs that train are
in tests/integration/runner/test_preempt.py)."""

from __future__ import annotations

import signal
import sys

import pytest

from labkit.runner._preempt import InterruptWatch, ctrl_c_raises


def _lightning_on_ctrl_c() -> None:
    """What Lightning 2.6's ``_call_and_handle_interrupt`` does with a KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(1)


def test_ctrl_c_in_fit_reaches_the_caller_as_keyboard_interrupt() -> None:
    watch = InterruptWatch()
    watch.on_exception(None, None, KeyboardInterrupt())  # type: ignore[arg-type]
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), ctrl_c_raises(watch):
        _lightning_on_ctrl_c()
    assert signal.getsignal(signal.SIGINT) is before  # a second Ctrl-C stops the process again


def test_other_exits_and_sigterm_pass_through_unchanged() -> None:
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    watch = InterruptWatch()
    watch.on_exception(None, None, SIGTERMException())  # type: ignore[arg-type]
    with pytest.raises(SIGTERMException), ctrl_c_raises(watch):
        raise SIGTERMException
    with pytest.raises(SystemExit) as exited, ctrl_c_raises(InterruptWatch()):
        sys.exit(3)
    assert exited.value.code == 3
