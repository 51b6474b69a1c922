"""GracefulStop with real signals sent to this process: the first asks, a second (or one at a moment that
may stop at once) interrupts, and the previous handlers come back."""

from __future__ import annotations

import os
import signal
import time

import pytest

from lora_scripts.stopping import GracefulStop


def _deliver(sig: int) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(0.05)  # Python runs the handler between bytecodes of the main thread


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_asks_and_a_second_stops_at_once(sig):
    said = []
    before = signal.getsignal(sig)
    with pytest.raises(KeyboardInterrupt), GracefulStop(lambda: said.append(1)) as stop:
        _deliver(sig)
        assert stop.requested and said == [1]  # still running: the work stops at its next safe point
        _deliver(sig)
        pytest.fail("the second signal did not interrupt")
    assert signal.getsignal(sig) is before


def test_a_signal_while_stopping_at_once_is_allowed_interrupts_the_first_time():
    moment = {"between_steps": True}
    with pytest.raises(KeyboardInterrupt), GracefulStop(lambda: None, lambda: moment["between_steps"]):
        _deliver(signal.SIGINT)
        pytest.fail("not interrupted")
    moment["between_steps"] = False
    with GracefulStop(lambda: None, lambda: moment["between_steps"]) as stop:
        _deliver(signal.SIGINT)
    assert stop.requested
