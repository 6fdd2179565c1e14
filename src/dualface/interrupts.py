"""Stopping without losing work: SIGTERM taken as Ctrl-C, and no second signal cutting the closing save short.

Training saves a checkpoint when it is interrupted. A job runner (the web UI's Cancel, a batch system,
`kill`) stops a process with SIGTERM, whose default is to die on the spot, losing every step since the
last periodic save; and a user who presses Ctrl-C twice would cut that closing save short. Signal
handlers belong to the main thread, so elsewhere (a test's thread, the UI's server) this is a no-op.
"""

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

log = logging.getLogger(__name__)
SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_once(what: str) -> Iterator[None]:
    """Inside, the first Ctrl-C or SIGTERM raises KeyboardInterrupt, and any later one is only noted while
    `what` (the work the interrupt stopped) saves. SIGKILL still stops it at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def hold(signum: int, frame: object) -> None:
        log.warning("interrupted again: still saving %s, then it stops (SIGKILL stops it now)", what)

    def stop(signum: int, frame: object) -> None:
        for s in SIGNALS:  # from here on: whatever catches the interrupt saves, and nothing cuts it short
            signal.signal(s, hold)
        raise KeyboardInterrupt

    before = {s: signal.signal(s, stop) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
