"""Jobs: each long step of the workflow run as the real `dualface` command in a background process.

A job is started detached, in a session of its own, so it outlives the browser tab that asked for it (and a
Ctrl-C in the server's terminal), and is cancelled as one process group. It runs under a small runner,
`python -m dualface.ui.jobs jobs/<id>.json`, which runs the job's commands in order with their output in
jobs/<id>.log and writes the outcome into the record when they end, so the outcome is known even if the web
server was restarted in between. The server only reads these files, and signals the group to cancel.

Commands are argument lists, never shell strings: nothing a user typed is ever parsed by a shell.
"""

import contextlib
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from dualface.config import PROGRESS_ENV
from dualface.files import atomic_write_bytes
from dualface.ui.workspace import RequestError

Status = Literal["running", "done", "failed", "cancelled"]
JOB_ID = re.compile(r"^[a-z]+-\d{8}-\d{6}-[0-9a-f]{4}$")
GRACE_S = 10.0  # after Cancel: time to save and exit on SIGINT (training saves a checkpoint) before SIGTERM
# Training's closing save is shielded from SIGTERM, and a large model's takes longer than 10 s (`hd`, 1.5 GB:
# 17 s on a 2-core CPU): SIGKILL waits that much longer for it.
SAVE_S = 120.0
KILL_S = 5.0  # then time to exit on SIGTERM before SIGKILL
# A progress bar as tqdm writes it: "converting clip.mpg:  45%|####5     | 45/100 [00:12<00:15,  3.61frame/s]",
# or without a total "sampling: 45frame [00:12, 3.61frame/s]" (a slow one's rate reads "1.20s/frame").
BAR = re.compile(
    r"^(?:(?P<desc>.*?):\s*)?(?:\d+%\|[^|]*\|\s*)?(?P<done>\d+)(?:/(?P<total>\d+)|(?P<unit>[^\s\[/]*))"
    r"\s\[(?P<elapsed>[\d:]+)(?:<(?P<left>[\d:?]+))?,\s*(?P<rate>[^\],]+)(?:,[^\]]*)?\]$"
)


@dataclass
class Job:
    id: str
    kind: str  # extract, train, convert, evaluate
    label: str  # one line for the job list
    commands: list[list[str]]  # run in order, in the workspace folder, until one fails
    params: dict[str, Any] = field(default_factory=dict)  # what the UI asked for: progress and results use it
    created: float = 0.0
    status: Status = "running"
    pid: int | None = None  # the runner's, which leads the job's process group
    returncode: int | None = None
    ended: float | None = None
    note: str = ""


def dualface_command(*args: str) -> list[str]:
    """The CLI, run by the same interpreter as the server (so the same installation)."""
    return [sys.executable, "-m", "dualface", *args]


def record_path(root: Path, job_id: str) -> Path:
    if not JOB_ID.match(job_id):
        raise RequestError(f"no job {job_id!r}", 404)
    return root / "jobs" / f"{job_id}.json"


def log_path(root: Path, job_id: str) -> Path:
    return record_path(root, job_id).with_suffix(".log")


def save(root: Path, job: Job) -> None:
    atomic_write_bytes(record_path(root, job.id), json.dumps(asdict(job), indent=1).encode(), fsync=False)


def load(root: Path, job_id: str) -> Job:
    try:
        return Job(**json.loads(record_path(root, job_id).read_text()))
    except FileNotFoundError:
        raise RequestError(f"no job {job_id!r}", 404) from None


def start(
    root: Path, kind: str, label: str, commands: list[list[str]], params: dict[str, Any]
) -> tuple[Job, subprocess.Popen]:
    """Record a job and start its runner; returns the job and the runner's process (the caller reaps it)."""
    job_id = f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    job = Job(job_id, kind, label, commands, params, created=time.time())
    save(root, job)
    with open(log_path(root, job_id), "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "dualface.ui.jobs", str(record_path(root, job_id))],
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # The log follows the job line by line, and shows its progress bars, which the command line turns
            # off where stderr is no terminal: one state a second, for the job list to read (`progress`).
            env={**os.environ, "PYTHONUNBUFFERED": "1", PROGRESS_ENV: "1", "TQDM_MININTERVAL": "1"},
        )
    return job, process


def list_jobs(root: Path, processes: dict[str, subprocess.Popen]) -> list[Job]:
    """Every job, newest first. A job recorded as running whose runner is gone (killed, machine restarted)
    is reported as failed."""
    # Reap first: a zombie runner would still count as a live process group below. A reaped runner stays
    # listed, known to have ended: one stopped before it recorded its pid would pass for starting (`_alive`).
    for process in list(processes.values()):  # a copy: a request in another thread may start a job meanwhile
        process.poll()
    jobs = []
    for path in (root / "jobs").glob("*.json"):
        try:
            job = Job(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue  # a record being replaced this instant, or not ours
        if job.status == "running" and not _alive(job, processes):
            job.status, job.note = "failed", "the job's process ended without recording an outcome"
        elif job.status != "running" and _group_lingers(job):
            # The runner records the outcome just before it exits: until its whole process group is gone
            # the job's processes still hold memory, files and the folder lock, so it is not over yet.
            job.status, job.note = "running", "stopping"
        elif job.status != "running" and job.id in processes and processes[job.id].poll() is not None:
            del processes[job.id]  # its outcome is on record: the runner is needed no more
        jobs.append(job)
    return sorted(jobs, key=lambda j: j.created, reverse=True)


def _alive(job: Job, processes: dict[str, subprocess.Popen]) -> bool:
    if job.id in processes:
        return processes[job.id].poll() is None
    if job.pid is None:
        return time.time() - job.created < 30  # the runner has not written its pid yet
    try:
        cmdline = Path(f"/proc/{job.pid}/cmdline").read_bytes()
        return b"dualface.ui.jobs" in cmdline  # not some later process that got the same pid
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel whether the pid exists
        try:
            os.kill(job.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True


def _group_lingers(job: Job) -> bool:
    """Whether the process group of a job that recorded its outcome a moment ago still exists (a pid
    group seen later than that could be another's, with a reused pid)."""
    if job.pid is None or job.ended is None or time.time() - job.ended > 60:
        return False
    try:
        os.killpg(job.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cancel(root: Path, job_id: str, processes: dict[str, subprocess.Popen]) -> None:
    """Ask a running job to stop: SIGINT to its process group (training saves a checkpoint on it); the
    runner escalates to SIGTERM and SIGKILL if the command does not exit in time."""
    job = load(root, job_id)
    if job.status != "running" or not _alive(job, processes):
        raise RequestError(f"job {job_id} is not running", 409)
    pid = processes[job_id].pid if job_id in processes else job.pid
    if pid is None:
        raise RequestError(f"job {job_id} is still starting: try again in a moment", 409)
    with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
        os.killpg(pid, signal.SIGINT)


def log_tail(root: Path, job_id: str, limit: int = 64_000) -> str:
    """The last `limit` bytes of a job's log."""
    path = log_path(root, job_id)
    try:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - limit))
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def last_line(root: Path, job_id: str) -> str:
    """The current (or last) command's last line of output: what it did, or why it failed, never what the
    command before it said (the runner's own lines skipped, unless the command has said nothing yet)."""
    lines = [line.strip() for line in log_tail(root, job_id, 4000).splitlines() if line.strip()]
    starts = [i for i, line in enumerate(lines) if line.startswith("$ ")]
    current = lines[starts[-1] :] if starts else lines  # without its "$ " line, the tail is all the current's
    said = [line for line in current if not line.startswith(("$ ", "[job "))]
    return (said or current or [""])[-1][:200]


def bar_state(line: str) -> str | None:
    """A progress bar's line in words ("converting clip.mpg: 45/100, 3.61 frame/s, ETA 00:15", or without a
    total "sampling: frame 45, 3.61 frame/s"); None for any other line."""
    bar = BAR.match(line)
    if not bar:
        return None
    done = f"{bar['done']}/{bar['total']}" if bar["total"] else f"{bar['unit'] or 'it'} {bar['done']}"
    words = [done]
    if not bar["rate"].startswith("?"):  # no rate before the second update
        words.append(re.sub(r"^([\d.]+)", r"\1 ", bar["rate"].strip()))
    if bar["left"] and "?" not in bar["left"]:
        words.append(f"ETA {bar['left']}")
    return (f"{bar['desc'].strip()}: " if bar["desc"] else "") + ", ".join(words)


def progress(root: Path, job_id: str) -> str:
    """What the job's list shows: its command's last line, a progress bar's read as rate and ETA."""
    line = last_line(root, job_id)
    return bar_state(line) or line


# ---------------------------------------------------------------------------------------------------------
# the runner: `python -m dualface.ui.jobs RECORD`


def run(record: Path) -> int:
    """Run a job's commands and record the outcome; returns the exit status of the last command run."""
    root = record.parent.parent
    job = Job(**json.loads(record.read_text()))
    cancelled_at: list[float] = []

    def on_signal(signum: int, frame: object) -> None:
        # The runner stays to record the outcome; the command, in the same process group, got the signal too.
        if not cancelled_at:
            cancelled_at.append(time.monotonic())

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    job.pid = os.getpid()
    save(root, job)
    returncode = 0
    for command in job.commands:
        if cancelled_at:
            break
        print(f"$ {shlex.join(command)}", flush=True)
        try:
            child = subprocess.Popen(command, cwd=root)  # stdout/stderr: the log, inherited
        except OSError as error:
            print(f"error: cannot start {command[0]}: {error}", flush=True)
            returncode = 127
            break
        returncode = _wait(child, cancelled_at, SAVE_S if job.kind == "train" else 0.0)
        if returncode != 0:
            break
    job.returncode, job.ended = returncode, time.time()
    job.status = "cancelled" if cancelled_at else ("done" if returncode == 0 else "failed")
    print(f"[job {job.status}, exit status {returncode}]", flush=True)
    save(root, job)
    return returncode


def _wait(child: subprocess.Popen, cancelled_at: list[float], saving: float = 0.0) -> int:
    """The child's exit status; once cancelled, SIGTERM after GRACE_S and SIGKILL `saving` + KILL_S later."""
    escalated = 0
    while True:
        try:
            return child.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        waited = time.monotonic() - cancelled_at[0] if cancelled_at else 0.0
        if escalated == 0 and waited > GRACE_S:
            child.terminate()
            escalated = 1
        elif escalated == 1 and waited > GRACE_S + saving + KILL_S:
            child.kill()
            escalated = 2


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1])))
