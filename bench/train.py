"""Training speed in steady state, against this machine's own dense peaks measured in the same run.

    python bench/train.py                 # writes bench/results/train.json
    python bench/train.py --quick         # a few steps of each run: checks the bench itself, not speed
    python bench/train.py --presets lite128 --layouts --name train-xeon  # another CPU; both memory layouts

EGs/s is faceswap's figure: batch per identity x identities x steps / seconds, at batch 16 per identity,
with the real data pipeline feeding dualface's own `train()`. The steps are timed from its
training_log.csv, which stamps every step: the first `warm-up` steps (kernel selection, allocator growth)
are left out, and so are the closing checkpoint save, preview and loss plot, which are timed apart (from
the files' modification times) and reported beside the steps, never inside them.

Peaks, measured in the same run with as many threads as training used: an n x n x n matmul (BLAS for
fp32) and a 1x1 convolution of 256 to 256 channels on 16 x 32 x 32 pixels (oneDNN, the library the
models' convolutions run on). A dtype's peak is the better of the two; every run is reported as a share
of the peak of the dtype it computes in. bf16 is measured where the CPU runs it natively (AMX or
AVX-512-bf16, `dualface.precision.hardware_bf16`); where it is emulated, one step of `lite` is timed and the
larger presets are skipped, with the reason in the results.

Ratios to faceswap come only from `make bench-peer` (bench/peer.py), which runs it in the same session.
"""

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

import torch

from common import hardware, write_result
from dualface import __version__
from dualface.config import ExtractConfig, TrainConfig
from dualface.data import load_face_set
from dualface.extract import extract
from dualface.model import ModelConfig, train_flops_per_example
from dualface.precision import hardware_bf16, wants_channels_last
from dualface.threads import ThreadPolicy
from dualface.train import batch_stream, train

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "grid"
BATCH = 16
PRESETS = ("original", "lite", "lite128")
# Steps timed after WARM_UP steps, per preset (each step is batch 16 x 2 identities).
TIMED = {"original": 10, "lite": 40, "lite128": 20}
WARM_UP = 3
DTYPES = {"fp32": "float32", "bf16": "bfloat16"}


def best_rate(fn, flop: float, windows: int, seconds: float) -> float:
    """GFLOP/s of `fn`: the best of `windows` timing windows, so that short bursts of other work matter less."""
    fn()  # library set-up, kernel selection
    best = 0.0
    for _ in range(windows):
        count, start = 0, time.perf_counter()
        while not count or time.perf_counter() - start < seconds:  # at least one call
            fn()
            count += 1
        best = max(best, flop * count / (time.perf_counter() - start) / 1e9)
    return best


def peaks(dtype: torch.dtype, native: bool, quick: bool = False) -> dict:
    """Dense rates of this dtype: matmul n^3 and a 1x1 conv (16, 256, 32, 32) -> 256 channels.

    Emulated bf16 runs far below fp32 (75x on an AVX2 EPYC, 5x on an AVX-512 Xeon): there it gets one call
    of each, at n = 1024, after one untimed call (a 2048^3 product could take over 10 s)."""
    emulated = dtype == torch.bfloat16 and not native
    n = 256 if quick else 1024 if emulated else 2048
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    x = torch.randn(16, 256, 32, 32, dtype=dtype)
    w = torch.randn(256, 256, 1, 1, dtype=dtype)
    windows, seconds = (1, 0.0) if emulated else (1, 0.2) if quick else (5, 1.0)
    with torch.no_grad():
        matmul = best_rate(lambda: a @ b, 2.0 * n**3, windows, seconds)
        conv = best_rate(lambda: torch.nn.functional.conv2d(x, w), 2.0 * 16 * 32 * 32 * 256 * 256, windows, seconds)
    return {
        "matmul_gflop_per_s": round(matmul, 2),
        "matmul_n": n,
        "conv1x1_gflop_per_s": round(conv, 2),
        "conv1x1_shape": "16x256x32x32 -> 256",
        "peak_gflop_per_s": round(max(matmul, conv), 2),
        "how": "one call after one untimed (emulated)" if emulated else f"best of {windows} windows of {seconds} s",
    }


def extract_faces(work: Path) -> list[Path]:
    faces = []
    for clip_dir, name in ((DATA / "s1", "s1"), (DATA / "speakers", "other")):
        extract(ExtractConfig(inputs=[clip_dir], output=work / name, progress=False))
        faces.append(work / name)
    return faces


def timed_run(
    faces: list[Path], work: Path, preset: str, precision: str, warm: int, timed: int, channels_last: bool | None
) -> dict:
    """Train warm + timed steps in one `train()` call; time the steps from its log, the closing work apart.
    `channels_last` None: the layout training picks (`precision.wants_channels_last`)."""
    model_dir = work / f"{preset}-{precision}-{channels_last}"
    cfg = TrainConfig(
        faces=faces,
        model_dir=model_dir,
        preset=preset,
        precision=precision,
        batch_size=BATCH,
        iterations=warm + timed,
        warmup=1,
        save_every=10**6,
        preview_every=10**6,
        progress=False,
        tensorboard=False,
        channels_last=channels_last,
    )
    load_before = round(os.getloadavg()[0], 2)
    summary = train(cfg)
    log = model_dir / "training_log.csv"
    with open(log) as f:
        seconds = {int(row["step"]): float(row["seconds"]) for row in csv.DictReader(f)}
    last = warm + timed
    steady = seconds[last] - seconds[warm]
    per_step = sorted(seconds[i + 1] - seconds[i] for i in range(warm, last))
    # The closing work, in the order train() does it: checkpoint, preview, loss plot (file mtimes).
    stamps = {
        "steps": log.stat().st_mtime,
        "save": max(p.stat().st_mtime for p in model_dir.glob("step-*.safetensors")),
        "preview": (model_dir / "preview.png").stat().st_mtime,
        "loss_plot": (model_dir / "loss.png").stat().st_mtime,
    }
    closing = summary.seconds - seconds[last]
    preview_s = stamps["preview"] - stamps["save"]
    plot_s = stamps["loss_plot"] - stamps["preview"]
    egs = BATCH * 2 * timed / steady
    return {
        "egs_per_s": round(egs, 2),
        "warm_up_steps": warm,
        "timed_steps": timed,
        "s_per_step_median": round(per_step[len(per_step) // 2], 3),
        "first_step_s": round(seconds[1], 2),
        "closing_s": {
            "save": round(closing - preview_s - plot_s, 2),
            "preview": round(preview_s, 2),
            "loss_plot": round(plot_s, 2),
        },
        "whole_call_egs_per_s": round(summary.examples_per_second, 2),  # what the old bench reported
        "load_before": load_before,
    }


def data_time_ms(faces: list[Path]) -> float:
    """Milliseconds to load-augment one step's batches of `lite` on one thread (the prefetch thread's work)."""
    model_cfg = ModelConfig.from_preset("lite")
    sets = [load_face_set(folder, model_cfg) for folder in faces]
    stream = batch_stream(sets, model_cfg.size, BATCH, TrainConfig(faces=faces, model_dir=Path()).augment, 0, 0, 0)
    next(stream)
    start = time.perf_counter()
    for _ in range(20):
        next(stream)
    return (time.perf_counter() - start) / 20 * 1000


def plan(native: bool, quick: bool, presets: list[str], layouts: bool) -> dict[str, tuple | str]:
    """run name -> (preset, precision, warm-up steps, timed steps, channels-last or None: training's pick), or
    the reason it is skipped. With `layouts`, each fp32 run again in the layout training does not pick."""
    runs: dict[str, tuple | str] = {}
    other = "contiguous" if wants_channels_last(torch.device("cpu")) else "channels-last"
    for preset in presets:
        timed = 2 if quick else TIMED[preset]
        warm = 1 if quick else WARM_UP
        runs[f"{preset} fp32"] = (preset, "fp32", warm, timed, None)
        if layouts:
            runs[f"{preset} fp32 {other}"] = (preset, "fp32", warm, timed, other == "channels-last")
        if native:
            runs[f"{preset} bf16"] = (preset, "bf16", warm, timed, None)
        elif preset == "lite" and not quick:
            runs[f"{preset} bf16"] = (preset, "bf16", 1, 1, None)
        else:
            runs[f"{preset} bf16"] = "skipped: bf16 is emulated on this CPU (no AMX/AVX-512-bf16): see its peaks"
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 timed steps per run: checks the bench, not speed")
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    parser.add_argument("--layouts", action="store_true", help="each fp32 run also in the layout not picked")
    parser.add_argument("--name", default="train", help="bench/results/<name>.json (another CPU: another name)")
    args = parser.parse_args()
    native = hardware_bf16(torch.device("cpu"))
    # The thread count train() will pick (auto: the cores other processes leave idle); peaks use the same.
    threads = ThreadPolicy().start()
    machine = {**hardware(), "native_bf16": native, "threads": threads}
    peak = {dtype: peaks(getattr(torch, name), native, args.quick) for dtype, name in DTYPES.items()}
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        faces = extract_faces(work)
        for name, how in plan(native, args.quick, args.presets, args.layouts).items():
            if isinstance(how, str):
                results[name] = {"skipped": how}
                continue
            preset, precision, warm, timed, layout = how
            print(f"{time.strftime('%H:%M:%S')} {name}: {warm} warm-up + {timed} timed steps", flush=True)
            run = timed_run(faces, work, preset, precision, warm, timed, layout)
            flops = train_flops_per_example(ModelConfig.from_preset(preset))
            gflops = run["egs_per_s"] * flops / 1e9
            run |= {
                "precision": precision,
                "gflop_per_example": round(flops / 1e9, 3),
                "gflop_per_s": round(gflops, 1),
                "share_of_peak": round(gflops / peak[precision]["peak_gflop_per_s"], 3),
            }
            if precision == "bf16" and not native:
                run["note"] = "emulated bf16: one step after one warm-up step"
            results[name] = run
        data_ms = data_time_ms(faces)

    print(
        f"\ndualface {__version__} training benchmark on {machine['cpu']} ({machine['capability']}, "
        f"{machine['cores']} cores, {threads} threads, bf16 {'native' if native else 'emulated'})"
    )
    for dtype, p in peak.items():
        print(
            f"peak {dtype}: matmul {p['matmul_n']}^3 {p['matmul_gflop_per_s']:.1f} GFLOP/s, 1x1 conv "
            f"{p['conv1x1_gflop_per_s']:.1f} GFLOP/s ({p['how']})"
        )
    columns = ("EGs/s", "s/step", "GFLOP/s", "of peak", "x lite fp32", "save s", "preview s", "old EGs/s")
    header = f"\n{'run':<24}" + "".join(f"{c:>12}" for c in columns)
    print(header)
    print("-" * (len(header) - 1))
    base = results.get("lite fp32", {}).get("egs_per_s")
    for name, r in results.items():
        if "skipped" in r:
            print(f"{name:<24}  {r['skipped']}")
            continue
        r["ratio_to_lite_fp32"] = round(r["egs_per_s"] / base, 3) if base else None
        cells = (
            f"{r['egs_per_s']:.2f}",
            f"{r['s_per_step_median']:.3f}",
            f"{r['gflop_per_s']:.1f}",
            f"{100 * r['share_of_peak']:.0f}%",
            f"{r['ratio_to_lite_fp32']:.3f}x" if base else "-",
            f"{r['closing_s']['save']:.2f}",
            f"{r['closing_s']['preview']:.2f}",
            f"{r['whole_call_egs_per_s']:.2f}",
        )
        print(f"{name:<24}" + "".join(f"{c:>12}" for c in cells))
    print(
        "\nEGs/s: steady-state steps only. 'old EGs/s': the same run timed as the old bench did, the whole "
        "train() call\nincluding the closing save and preview. 'of peak': of the better of matmul and 1x1 conv "
        "in the run's dtype."
    )
    step_ms = 1000 * BATCH * 2 / base if base else None
    if step_ms:
        print(
            f"data pipeline (lite): {data_ms:.0f} ms on one thread to augment a step's batches, against a "
            f"{step_ms:.0f} ms step ({data_ms / step_ms:.0%})"
        )
    if args.quick:
        return
    write_result(
        args.name,
        {
            "version": __version__,
            "hardware": machine,
            "batch_per_identity": BATCH,
            "peaks": peak,
            "data_ms_per_step_lite": round(data_ms, 1),
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
