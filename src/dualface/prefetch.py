"""Running an iterator ahead in a background thread: video decoding and training augmentation both
release the GIL, so the next items are made while this thread works on the current one."""

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")


def prefetch(items: Iterator[T], depth: int = 8) -> Iterator[T]:
    """Run an iterator in a background thread, `depth` items ahead.

    FFmpeg decodes with the GIL released, so decoding the next frames overlaps the work on this one.
    Exceptions from the iterator are re-raised here; closing this generator stops the thread.
    """
    done = object()
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(done)
        except BaseException as error:  # handed to the consumer, who re-raises it
            put(error)

    thread = threading.Thread(target=run, daemon=True, name="prefetch")
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()
