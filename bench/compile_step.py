"""Does `torch.compile` speed up a training step on this CPU? One `lite128` step (both identities' faces
through the encoder and their decoders, the default `ssim_l1` loss under a face mask, the mask head's loss,
backward, Adam) at the preset's batch, timed eager and compiled (inductor) in the same run.

    python bench/compile_step.py             # writes bench/results/compile_step.json
    python bench/compile_step.py --steps 5   # checks the bench itself, not speed

It times the model's step alone, not `train()` (whose data pipeline, critic and average are the same either
way), at the precision and memory layout `--precision auto` picks here. The compiled step's first calls
(tracing, code generation, the C++ build) are timed apart.
"""

import argparse
import time

import torch

from common import hardware, write_result
from dualface.losses import LOSSES
from dualface.model import Autoencoder, ModelConfig, to_channels_last
from dualface.precision import pick_dtype, wants_channels_last
from dualface.presets import MODEL_PRESETS


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="lite128")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", default="compile_step")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    dtype = pick_dtype("auto", device)
    layout = torch.channels_last if wants_channels_last(device) else torch.contiguous_format
    batch = MODEL_PRESETS[args.preset]["batch"]
    cfg = ModelConfig.from_preset(args.preset)
    loss_fn = LOSSES["ssim_l1"]
    torch.manual_seed(0)
    faces = {n: torch.rand(batch, 3, cfg.size, cfg.size).to(memory_format=layout) for n in ("a", "b")}
    masks = {n: (torch.rand(batch, 1, cfg.size, cfg.size) > 0.3).float() for n in faces}

    def run(compiled: bool) -> dict:
        torch.manual_seed(0)
        model = Autoencoder(cfg, list(faces))
        model = to_channels_last(model) if layout is torch.channels_last else model
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.5, 0.999))

        def loss_of(x: dict[str, torch.Tensor]) -> torch.Tensor:
            with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
                out = model(x)
            total = 0
            for n, o in out.items():
                total = total + loss_fn(o.rgb.float(), x[n], masks[n])
                if o.mask is not None:
                    total = total + (o.mask.float() - masks[n]).abs().mean()
            return total

        step_fn = torch.compile(loss_of) if compiled else loss_of

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            step_fn(faces).backward()
            optimizer.step()

        start = time.perf_counter()
        for _ in range(3):
            step()
        warm_up = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        return {"warm_up_s": round(warm_up, 2), "s_per_step": round((time.perf_counter() - start) / args.steps, 4)}

    eager, compiled = run(False), run(True)
    ratio = eager["s_per_step"] / compiled["s_per_step"]
    print(f"{args.preset}, batch {batch} per identity, {dtype}, {args.threads} threads, {args.steps} steps timed")
    print("| step | first 3 steps (s) | s / step | speed against eager |")
    print("| --- | --- | --- | --- |")
    print(f"| eager | {eager['warm_up_s']} | {eager['s_per_step']} | 1.00x |")
    print(f"| torch.compile | {compiled['warm_up_s']} | {compiled['s_per_step']} | {ratio:.2f}x |")
    write_result(
        args.name,
        {
            "hardware": hardware(),
            "preset": args.preset,
            "batch": batch,
            "dtype": str(dtype),
            "channels_last": layout is torch.channels_last,
            "threads": args.threads,
            "steps": args.steps,
            "eager": eager,
            "compiled": compiled,
            "compiled_speed_vs_eager": round(ratio, 3),
        },
    )


if __name__ == "__main__":
    main()
