"""Training speed: EGs/s (faceswap's examples per second: batch x identities x iterations / seconds) at
batch 16 per identity, with the real data pipeline feeding the model, for `original` in fp32 and bf16 and
for `lite`; each one's achieved GFLOP/s against this machine's matmul rates measured in the same run.

    python bench/train.py            # writes bench/results/train.json

Faces come from the repository's own footage (extracted at the start), so this runs anywhere.
"""

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
from dualface.train import batch_stream, hardware_bf16, train

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "grid"
# name: (preset, precision, warm-up steps, timed steps). Few bf16 steps: without native bf16 (AVX2 CPUs)
# each takes a minute or more.
RUNS = {
    "original fp32": ("original", "fp32", 2, 10),
    "original bf16": ("original", "bf16", 1, 1),
    "lite fp32": ("lite", "fp32", 2, 40),
    "lite bf16": ("lite", "bf16", 1, 2),
}
REFERENCE = {"faceswap 3 original fp32, batch 16 (issue #3)": 4.4}


def matmul_rate(dtype: torch.dtype, n: int = 1024, seconds: float = 2.0) -> float:
    """GFLOP/s of an n x n matmul in this dtype."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - start) / 1e9


def data_time_ms(faces: list[Path], cfg: TrainConfig) -> float:
    """Milliseconds to load-augment one step's batches on one thread (the prefetch thread's work)."""
    model_cfg = ModelConfig.from_preset(cfg.preset)
    sets = [load_face_set(folder, model_cfg) for folder in faces]
    stream = batch_stream(sets, model_cfg.size, cfg.batch_size, cfg.augment, 0, 0, 0)
    next(stream)
    start = time.perf_counter()
    for _ in range(20):
        next(stream)
    return (time.perf_counter() - start) / 20 * 1000


def main() -> None:
    rates = {
        "fp32": matmul_rate(torch.float32),
        "bf16": matmul_rate(torch.bfloat16, n=256 if not hardware_bf16(torch.device("cpu")) else 1024),
    }
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        faces = []
        for clip_dir, name in ((DATA / "s1", "s1"), (DATA / "speakers", "other")):
            extract(ExtractConfig(inputs=[clip_dir], output=Path(tmp) / name, progress=False))
            faces.append(Path(tmp) / name)
        for run_name, (preset, precision, warm, steps) in RUNS.items():
            cfg = TrainConfig(
                faces=faces,
                model_dir=Path(tmp) / run_name.replace(" ", "_"),
                preset=preset,
                precision=precision,
                batch_size=16,
                iterations=warm + steps,
                warmup=1,
                save_every=10**6,
                preview_every=10**6,
                progress=False,
                tensorboard=False,
            )
            # Warm-up steps, then the timed ones: resume continues the same model.
            train(TrainConfig(**{**cfg.__dict__, "iterations": warm}))
            summary = train(TrainConfig(**{**cfg.__dict__, "resume": True}))
            flops = train_flops_per_example(ModelConfig.from_preset(preset))
            gflops = summary.examples_per_second * flops / 1e9
            if run_name == "lite fp32":
                data_ms = data_time_ms(faces, cfg)
            results[run_name] = {
                "egs_per_s": round(summary.examples_per_second, 2),
                "steps": steps,
                "gflop_per_example": round(flops / 1e9, 3),
                "gflop_per_s": round(gflops, 1),
                "share_of_fp32_matmul": round(gflops / rates["fp32"], 3),
                "share_of_bf16_matmul": round(gflops / rates["bf16"], 3),
            }
    machine = {
        **hardware(),
        "native_bf16": hardware_bf16(torch.device("cpu")),
        "matmul_gflop_per_s": {k: round(v, 1) for k, v in rates.items()},
    }
    base = results["original fp32"]["egs_per_s"]
    print(
        f"dualface {__version__} training benchmark on {machine['cpu']} ({machine['capability']}), "
        f"{machine['cores']} cores"
    )
    print(
        f"matmul: fp32 {rates['fp32']:.1f} GFLOP/s, bf16 {rates['bf16']:.1f} GFLOP/s"
        f"{'' if machine['native_bf16'] else ' (no native bf16 on this CPU: emulated)'}\n"
    )
    columns = ("EGs/s", "x orig fp32", "x faceswap", "GFLOP/s", "of fp32 mm", "of bf16 mm")
    header = f"{'run':<16}" + "".join(f"{c:>12}" for c in columns)
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        r["ratio_to_original_fp32"] = round(r["egs_per_s"] / base, 2)
        r["ratio_to_faceswap"] = round(r["egs_per_s"] / 4.4, 2)
        cells = (
            f"{r['egs_per_s']:.2f}",
            f"{r['ratio_to_original_fp32']:.2f}x",
            f"{r['ratio_to_faceswap']:.2f}x",
            f"{r['gflop_per_s']:.1f}",
            f"{100 * r['share_of_fp32_matmul']:.0f}%",
            f"{100 * r['share_of_bf16_matmul']:.0f}%",
        )
        print(f"{name:<16}" + "".join(f"{c:>12}" for c in cells))
    step_ms = 1000 * 16 * 2 / results["lite fp32"]["egs_per_s"]
    print(
        f"\ndata pipeline (lite, batch 16 x 2 identities): {data_ms:.0f} ms to augment a step's batches on one "
        f"thread, against a {step_ms:.0f} ms training step: the prefetch thread "
        f"{'keeps up' if data_ms < step_ms else 'is the bottleneck'} ({data_ms / step_ms:.0%} of a step)"
    )
    write_result(
        "train",
        {
            "version": __version__,
            "hardware": machine,
            "batch_per_identity": 16,
            "data_ms_per_step_lite": round(data_ms, 1),
            "step_ms_lite": round(step_ms, 1),
            "reference_egs_per_s": REFERENCE,
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
