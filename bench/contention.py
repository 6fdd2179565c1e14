"""Speed on a shared CPU: training and conversion idle, then beside a competing CPU-bound process that
this bench starts itself, under dualface's thread policy (auto), under torch's defaults, and (training)
as one single-threaded process per core.

    python bench/contention.py                      # writes bench/results/contention.json
    python bench/contention.py --competitor busy    # a one-thread Python busy loop instead

The competitor (default `matmul`): one process multiplying 1024 x 1024 float64 matrices with numpy in a
loop, on as many BLAS threads as the machine has cores: a job that wants the whole CPU, as another
training run would. `busy` is a single-threaded Python loop (wants one core). It starts 2 s before the
measurement and is stopped right after; its own rate (products per second) is reported beside it.

Each measurement runs in a fresh process, so no thread setting carries over:
- train: `lite` fp32, batch 16 per identity, for `--seconds`; EGs/s from training_log.csv over the steps
  after the first three (steady state).
- convert: the held-out GRID clip data/grid/s1-held-out/swau8n.mpg (75 frames, 360x288) with the
  starter `lite` weights into brbk7n, once untimed (loads the detector and landmark models) and then
  `--repeats` times timed; frames/s of the timed runs.
- extract: data/grid/s1 (5 clips, 375 frames), `--repeats` times after one untimed run; frames/s.
Policies: `auto` is `--threads 0`, dualface's default (src/dualface/threads.py: the cores other processes
leave idle, re-measured every 20 s; training runs in lanes, src/dualface/lanes.py, while another process is
busy); `torch default` is a fixed count of one thread per core, what torch and OpenCV pick by themselves;
`processes` (training only) is `train --processes` with one process per core: single-threaded workers,
data-parallel, the batch split between them (README, "CPU threads"). The target: loaded / idle >= 0.4 (a
fair share of two cores is 0.5).
"""

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import hardware, write_result

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "grid"
CLIP = DATA / "s1-held-out" / "swau8n.mpg"
STARTER = ROOT / "models" / "starter-lite-grid.safetensors"
WARM_STEPS = 3
TARGET = 0.4
POLICIES = ("auto", "torch default", "processes")  # "processes": training only
WORKS = ("train", "convert", "extract")


# ---------------------------------------------------------------------------------------------------------
# the competitor


def compete(kind: str) -> None:
    """Run until SIGTERM, then print how much work was done (JSON)."""
    count, start = 0, time.perf_counter()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    if kind == "matmul":
        import numpy as np

        a = np.random.default_rng(0).random((1024, 1024))
        while not stop:
            a @ a
            count += 1
    else:
        while not stop:
            for _ in range(100_000):
                pass
            count += 1
    print(json.dumps({"kind": kind, "per_s": round(count / (time.perf_counter() - start), 2)}), flush=True)


def start_competitor(kind: str) -> subprocess.Popen:
    threads = str(os.cpu_count() if kind == "matmul" else 1)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    process = subprocess.Popen(
        [sys.executable, __file__, "--compete", kind], stdout=subprocess.PIPE, text=True, env=env
    )
    time.sleep(2.0)  # running flat out before the measurement starts
    return process


def stop_competitor(process: subprocess.Popen) -> float:
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=60)
    return json.loads(out.strip().splitlines()[-1])["per_s"]


# ---------------------------------------------------------------------------------------------------------
# the measured work, each in its own process


def work_train(faces: list[Path], threads: int, seconds: float, processes: int = 1) -> dict:
    from dualface.config import TrainConfig
    from dualface.train import train

    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(
            faces=faces,
            model_dir=Path(tmp) / "model",
            preset="lite",
            precision="fp32",
            batch_size=16,
            time_limit=seconds,
            warmup=1,
            save_every=10**6,
            preview_every=10**6,
            tensorboard=False,
            progress=False,
            threads=threads,
            processes=processes,
        )
        train(cfg)
        if int(os.environ.get("RANK", "0")):
            return {}  # torchrun's other workers: rank 0 reports for all
        with open(cfg.model_dir / "training_log.csv") as f:
            stamps = {int(row["step"]): float(row["seconds"]) for row in csv.DictReader(f)}
    last = max(stamps)
    if last < WARM_STEPS + 2:
        raise SystemExit(f"only {last} steps in {seconds} s: give more --seconds")
    egs = 16 * 2 * (last - WARM_STEPS) / (stamps[last] - stamps[WARM_STEPS])  # with --processes, 16 in all
    return {"egs_per_s": round(egs, 2), "timed_steps": last - WARM_STEPS}


def work_convert(model_dir: Path, repeats: int) -> dict:
    from dualface.config import ConvertConfig
    from dualface.convert import convert

    with tempfile.TemporaryDirectory() as tmp:
        settings = {"input": CLIP, "model": model_dir, "to": "brbk7n", "progress": False}
        convert(ConvertConfig(output=Path(tmp) / "warm.mp4", **settings))
        frames, seconds = 0, 0.0
        for i in range(repeats):
            start = time.perf_counter()
            summary = convert(ConvertConfig(output=Path(tmp) / f"out{i}.mp4", **settings))
            seconds += time.perf_counter() - start
            frames += summary.frames
    return {"fps": round(frames / seconds, 2), "frames": frames}


def work_extract(repeats: int) -> dict:
    from dualface.config import ExtractConfig
    from dualface.extract import extract

    frames, seconds = 0, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        extract(ExtractConfig(inputs=[CLIP], output=Path(tmp) / "warm", progress=False))  # loads dlib's models
        for i in range(repeats):
            start = time.perf_counter()
            summary = extract(ExtractConfig(inputs=[DATA / "s1"], output=Path(tmp) / str(i), progress=False))
            seconds += time.perf_counter() - start
            frames += summary.total("frames_read")
    return {"fps": round(frames / seconds, 2), "frames": frames}


def measure(work: str, policy: str, args, faces: list[Path], model_dir: Path) -> dict:
    """Run one measurement in a fresh process; its last output line is the result."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    command = [sys.executable, __file__, "--work", work, "--seconds", str(args.seconds), "--repeats", str(args.repeats)]
    if work == "train" and policy == "processes":
        # `train --processes`: one single-threaded worker per core, data-parallel, the batch split between
        # them (README, "CPU threads"); started here by torchrun, as the command starts them itself.
        cores = os.cpu_count() or 1
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={cores}"]
        command = [*launch, *command[1:], "--processes", str(cores), "--faces", *map(str, faces)]
    elif work == "train":
        # torch default: a fixed count, one per core (what torch.get_num_threads() starts at here).
        command += ["--threads", "0" if policy == "auto" else str(os.cpu_count()), "--faces", *map(str, faces)]
    else:
        command += ["--model", str(model_dir)]
        if policy != "auto":
            env["OMP_NUM_THREADS"] = str(os.cpu_count())  # the policy keeps a count given here
    out = subprocess.run(command, env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{work} ({policy}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--competitor", choices=("matmul", "busy"), default="matmul")
    parser.add_argument("--seconds", type=float, default=30.0, help="training time of each train measurement")
    parser.add_argument("--repeats", type=int, default=2, help="timed conversions of the clip per measurement")
    parser.add_argument("--only", choices=WORKS, help="measure one of them")
    parser.add_argument("--compete", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--processes", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--faces", type=Path, nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.compete:
        return compete(args.compete)
    if args.work:
        if args.work == "train":
            result = work_train(args.faces, args.threads, args.seconds, args.processes)
            if not result:
                return
        elif args.work == "convert":
            result = work_convert(args.model, args.repeats)
        else:
            result = work_extract(args.repeats)
        print(json.dumps(result), flush=True)
        return

    from dualface.config import ExtractConfig
    from dualface.extract import extract

    works = [args.only] if args.only else list(WORKS)
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        work_dir = Path(tmp)
        faces = []
        for clips, name in ((DATA / "s1", "s1"), (DATA / "speakers", "brbk7n")):
            extract(ExtractConfig(inputs=[clips], output=work_dir / name, progress=False))
            faces.append(work_dir / name)
        model_dir = work_dir / "model"
        model_dir.mkdir()
        (model_dir / "best.safetensors").symlink_to(STARTER)
        for work in works:
            key = "egs_per_s" if work == "train" else "fps"
            for policy in POLICIES if work == "train" else POLICIES[:2]:
                print(f"{time.strftime('%H:%M:%S')} {work}, {policy}: idle", flush=True)
                idle = measure(work, policy, args, faces, model_dir)
                print(f"{time.strftime('%H:%M:%S')} {work}, {policy}: with the competitor", flush=True)
                competitor = start_competitor(args.competitor)
                try:
                    loaded = measure(work, policy, args, faces, model_dir)
                finally:
                    competitor_rate = stop_competitor(competitor)
                results.setdefault(work, {})[policy] = {
                    "unit": "EGs/s" if work == "train" else "frames/s",
                    "idle": idle[key],
                    "loaded": loaded[key],
                    "ratio": round(loaded[key] / idle[key], 3),
                    "meets_target": loaded[key] / idle[key] >= TARGET,
                    "competitor_per_s": competitor_rate,
                }
    competitor_desc = (
        f"numpy 1024^2 float64 matmul loop, {os.cpu_count()} BLAS threads"
        if args.competitor == "matmul"
        else "Python busy loop, 1 thread"
    )
    machine = hardware()
    print(f"\nOn {machine['cpu']} ({machine['capability']}, {machine['cores']} cores); competitor: {competitor_desc}")
    print(f"{'work':<9} {'policy':<14} {'idle':>9} {'loaded':>9} {'loaded/idle':>12}  target >= {TARGET}")
    for work, by_policy in results.items():
        for policy, r in by_policy.items():
            mark = "ok" if r["meets_target"] else "MISSED"
            print(
                f"{work:<9} {policy:<14} {r['idle']:>9.2f} {r['loaded']:>9.2f} {r['ratio']:>11.2f}x  {mark}"
                f"   ({r['unit']}; competitor {r['competitor_per_s']}/s)"
            )
    name = "contention" if args.competitor == "matmul" else f"contention-{args.competitor}"
    previous = Path(__file__).resolve().parent / "results" / f"{name}.json"
    earlier: list[str] = []
    if args.only and previous.exists():  # keep the other works' figures, from their own (earlier) run
        kept = json.loads(previous.read_text())["results"]
        earlier = [w for w in kept if w != args.only]
        results = {**{w: kept[w] for w in earlier}, **results}
    write_result(
        name,
        {
            "hardware": machine,
            "competitor": competitor_desc,
            "target_ratio": TARGET,
            "train": "lite fp32, batch 16 per identity, steps after the 3rd",
            "convert": f"{CLIP.relative_to(ROOT)} with the starter lite weights, {args.repeats} timed runs",
            "extract": f"data/grid/s1 (375 frames), {args.repeats} timed runs",
            "results": results,
            "from_an_earlier_run": earlier,  # their hardware and competitor may differ from the header's
        },
    )


if __name__ == "__main__":
    main()
