"""How many threads torch (OpenMP) and OpenCV use: chosen for the CPU as it is, not as it was built.

OpenMP's workers meet at a barrier after every parallel region. On a CPU shared with another busy process,
one worker is descheduled and the others wait for it at every layer: training with as many threads as
cores ran 8x slower than with one thread under the same load (6 against 49 EGs/s). `auto` gives dualface
the cores that other processes leave idle, measured from /proc/stat (the machine's busy time less this
process's own), and measures again every `RECHECK_S` seconds during long runs, since a competitor can
start or stop at any time. A number (or OMP_NUM_THREADS) fixes the count.

Where another process is busy, training runs its step in lanes instead (src/dualface/lanes.py): parts of
the batch on threads of their own, one torch thread each, meeting once a step rather than at every layer.

Used by training (`--threads`), conversion (the model stage, which also re-measures between batches) and
extraction (OpenCV's threads only: it never loads torch). bench/contention.py measures what it buys.
"""

import logging
import os
import sys
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

RECHECK_S = 20.0
FIRST_CHECK_S = 1.0


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _allowed() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:
        return None


def _cpu_seconds() -> tuple[float, float] | None:
    """(busy seconds of the CPUs this process may run on, busy seconds of this process) so far; None off
    Linux."""
    allowed = _allowed()
    try:
        with open("/proc/stat") as machine, open("/proc/self/stat") as me:
            lines = [line.split() for line in machine if line.startswith("cpu") and line[3].isdigit()]
            own = me.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    busy = 0
    for fields in lines:
        if allowed is None or int(fields[0][3:]) in allowed:
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
            busy += user + nice + system + irq + softirq + steal
    ticks = os.sysconf("SC_CLK_TCK")
    return busy / ticks, (int(own[11]) + int(own[12])) / ticks  # utime, stime of every thread


def omp_threads() -> int:
    """The count OMP_NUM_THREADS fixes, 0 where it fixes none. OpenMP reads " 2" and a nested "4,2" (the
    outer level first) as well as "2", so a user who set either has chosen as surely as with "2"."""
    first = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return max(1, int(first)) if first.isdigit() else 0


@dataclass
class ThreadPolicy:
    """`threads` = 0 for auto. Call `update()` now and then; it changes the count only when due.

    `share`: the part of the idle cores auto takes (at least one thread). Conversion's model shares the CPU
    with its own decoding, tracking, compositing and x264 threads: with every idle core, OpenMP's workers
    spin between the model's layers on the cores those stages need (720p on 2 cores: 0.42x a plain
    transcode with 2 threads, 0.46-0.50x with 1).

    `split`: the most lanes the caller can cut its work into (training: its batch). With auto, on a CPU
    that other processes share, `lanes` becomes that many (at most one per core) and `current` the torch
    threads of each (one, unless idle cores outnumber lanes); idle, `lanes` is 1 and `current` every core.
    """

    threads: int = 0
    share: float = 1.0
    split: int = 1
    current: int = field(default=0, init=False)
    lanes: int = field(default=1, init=False)
    _last: tuple[float, float, float] | None = field(default=None, init=False)
    _due: float = field(default=0.0, init=False)  # when auto measures next (time.monotonic)

    def start(self, sample_s: float = 0.2) -> int:
        """Set the count for the start of a run (auto samples the CPU for `sample_s` seconds; an
        OMP_NUM_THREADS in the environment is a choice already made, and is kept). With `sample_s` 0, auto
        does not wait: it takes its share of every core for now and measures over the run's first
        FIRST_CHECK_S, at the first `update()` after it (a conversion, whose stages all wait on the first
        batch, would otherwise start that much later)."""
        if not self.threads:
            self.threads = omp_threads()
        if self.threads:
            return self._apply(self.threads)
        self._mark()
        if not sample_s:
            self._due = time.monotonic() + FIRST_CHECK_S
            return self._apply(max(1, round(cores() * self.share)))
        time.sleep(sample_s)
        return self._apply(self._auto())

    def update(self) -> int:
        """With auto, re-measure when it is due (RECHECK_S after the last time); returns the count in use."""
        if self.threads or self._last is None or time.monotonic() < self._due:
            return self.current
        return self._apply(self._auto())

    def _auto(self) -> int:
        return max(1, round(self._idle_cores() * self.share))

    def _mark(self) -> None:
        sample, now = _cpu_seconds(), time.monotonic()
        self._last = None if sample is None else (now, *sample)
        self._due = now + RECHECK_S

    def _idle_cores(self) -> int:
        previous = self._last
        self._mark()
        if previous is None or self._last is None:
            return cores()
        elapsed = max(self._last[0] - previous[0], 1e-3)
        others = max(0.0, (self._last[1] - previous[1]) - (self._last[2] - previous[2])) / elapsed
        return max(1, min(cores(), round(cores() - others)))

    def _apply(self, count: int) -> int:
        idle, lanes = count, 1
        if self.split > 1 and not self.threads and idle < cores():  # shared: every core, in lanes
            lanes = min(cores(), self.split)
            count = max(1, idle // lanes)  # where cores outnumber lanes: threads that meet only on idle cores
        if count != self.current:
            import cv2

            # torch's count is per calling thread: apply it in the thread that runs the model (lanes set
            # their own). Stages that never load torch (extraction) are not made to import it.
            if "torch" in sys.modules:
                sys.modules["torch"].set_num_threads(count)
            cv2.setNumThreads(count)
            if self.current and self.split <= 1:  # training says its own, lanes and all
                log.info("CPU threads: %d (other processes now use about %d cores)", count, cores() - idle)
        self.current, self.lanes = count, lanes
        return count
