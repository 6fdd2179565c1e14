"""Stopping without losing work: SIGTERM taken as Ctrl-C, a step never cut in half, a save never cut short.

Training saves a checkpoint when it is interrupted. A job runner (the web UI's Cancel, a batch system,
`kill`) stops a process with SIGTERM, whose default is to die on the spot, losing every step since the
last periodic save. An interrupt raised wherever Python happens to be could land between the optimizer's
update and the step count (the checkpoint would then hold one step's weights under the step before), or
in one worker of several at another step than the rest. So inside the training loop a signal is a request,
taken at the end of the step; outside it (loading, before anything is worth saving) it interrupts at once.
A signal after the first only says that the work is still saving. Signal handlers belong to the main thread:
elsewhere (a test's thread, the UI's server) this is a no-op.
"""

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)
SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class Stop:
    asked: bool = False  # a signal came
    defer: bool = False  # set by the loop: note a signal and finish the step, rather than interrupt


@contextlib.contextmanager
def stop_signals(what: str) -> Iterator[Stop]:
    """Inside, Ctrl-C and SIGTERM raise KeyboardInterrupt, or, while `Stop.defer` is set, set `Stop.asked`
    for the loop to stop at its step's end; any later signal is only noted while `what` is saved. SIGKILL
    still stops the process at once."""
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum: int, frame: object) -> None:
        if stop.asked:
            log.warning("interrupted again: still saving %s; it stops when that is done", what)
            return
        stop.asked = True
        if stop.defer:
            log.warning("interrupted: stopping at the end of this step, and saving %s", what)
            return
        raise KeyboardInterrupt

    before = {s: signal.signal(s, handle) for s in SIGNALS}
    try:
        yield stop
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
