"""`deferred_sigint`: a Ctrl-C during a store transaction is held and delivered at its end,
through whatever handler was in place; outside the main thread nothing changes."""

from __future__ import annotations

import signal
import threading

import pytest

from flowdsl.store.interrupts import deferred_sigint


def test_a_sigint_is_held_until_the_block_ends_then_raised():
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_sigint():
            signal.raise_signal(signal.SIGINT)
            reached.append("after the signal")  # the block went on
    assert reached == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_held_sigint_goes_to_the_handler_that_was_in_place():
    calls = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))
    try:
        with deferred_sigint():
            signal.raise_signal(signal.SIGINT)
            assert calls == []
        assert calls == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_no_signal_no_change():
    with deferred_sigint():
        pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_outside_the_main_thread_it_changes_nothing():
    seen = []

    def work():
        with deferred_sigint():
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == [signal.default_int_handler]
