"""Where bf16 training time goes, layer by layer: each convolution of a preset, at training's batch, timed
forward and forward + backward in fp32 and in bf16 (autocast, channels-last, as training runs them), with
its share of this machine's bf16 peak measured in the same run.

    python bench/layers.py                      # original: bench/results/layers_original.json
    python bench/layers.py --preset lite128

The question it answers (issue 14): when a preset's bf16 step sits far below the bf16 peak, is it
dualface's overhead (casts, optimizer, the loop) or the convolutions themselves? The layers above are timed
as oneDNN runs them (nn.Conv2d). Then whole training steps (`train.compute_losses`, backward, fused Adam, on
random faces) with each of SWITCHES off and on (`model.Conv2d`'s matrix-product path for small deep maps;
that path's weights left contiguous by `model.to_channels_last`; the decoders' face and mask heads as one
convolution; SSIM's blur as banded products), interleaved in three rounds, so the machine's drift from
minute to minute falls on both alike; and with glibc's allocator as it comes and as `allocator` sets it
(each side a fresh process). Last, a bf16 step taken apart: the model's forward and backward alone, the
optimizer alone, and the rest (the losses), with the share of the peak the step could reach if the model
ran at the peak and the rest took what it takes.
"""

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

import dualface.losses
import dualface.model
from common import hardware, write_result
from dualface.allocator import keep_freed_memory
from dualface.config import TrainConfig
from dualface.model import Autoencoder, ModelConfig, train_flops_per_example
from dualface.precision import hardware_bf16
from dualface.train import compute_losses
from train import peaks

BATCH = 32  # 16 faces per identity, two identities: one encoder pass over both, as training does


def conv_shapes(preset: str) -> list[dict]:
    """Each convolution a training step runs: its module name, settings and input shape, from one forward."""
    model = Autoencoder(ModelConfig.from_preset(preset), ["a", "b"])
    size = model.config.size
    seen: list[dict] = []

    def hook(name: str):
        def record(module: torch.nn.Conv2d, inputs: tuple) -> None:
            seen.append({"name": name, "module": module, "input": tuple(inputs[0].shape)})

        return record

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    merged, dualface.model.MERGED_HEADS = dualface.model.MERGED_HEADS, False  # each head as its own module
    try:
        with torch.no_grad():
            model({"a": torch.rand(BATCH // 2, 3, size, size), "b": torch.rand(BATCH // 2, 3, size, size)})
    finally:
        dualface.model.MERGED_HEADS = merged
        for h in handles:
            h.remove()
    return seen


def timed(fn, repeats: int) -> float:
    fn()  # kernel selection
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def layer_times(module: torch.nn.Conv2d, shape: tuple, dtype: torch.dtype, repeats: int) -> tuple[float, float]:
    """Seconds for the forward and for forward + backward (weights and input), in `dtype` under autocast."""
    conv = torch.nn.Conv2d(
        module.in_channels, module.out_channels, module.kernel_size, module.stride, module.padding
    ).to(memory_format=torch.channels_last)
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last).requires_grad_(shape[1] != 3)
    bf16 = dtype == torch.bfloat16

    def forward() -> None:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            conv(x)

    def both() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = conv(x)
        y.float().sum().backward()

    return timed(forward, repeats), timed(both, repeats)


def flops(module: torch.nn.Conv2d, shape: tuple) -> float:
    """Forward multiply-adds x 2 of one convolution on `shape`."""
    (kh, kw), (sh, sw) = module.kernel_size, module.stride
    out_h, out_w = (shape[2] + sh - 1) // sh, (shape[3] + sw - 1) // sw
    return 2.0 * shape[0] * out_h * out_w * module.out_channels * module.in_channels * kh * kw


def _dense_blur(t: torch.Tensor) -> torch.Tensor:
    """SSIM's blur as it was: dense (n, n) products, every row of the batch, then each image's columns."""
    t = t.contiguous()
    along_w = (t.reshape(-1, t.shape[-1]) @ dualface.losses._blur_matrix(t.shape[-1], t.device, t.dtype)).view(t.shape)
    return dualface.losses._blur_matrix(t.shape[-2], t.device, t.dtype).T @ along_w


# What the whole-step comparison turns off and on: a module's setting, its value off and on.
def _all_channels_last(model: torch.nn.Module) -> torch.nn.Module:
    return model.to(memory_format=torch.channels_last)


SWITCHES = {
    "small deep maps as matmuls": (dualface.model, "DEEP", 2**62, dualface.model.DEEP),
    "matmul weights kept contiguous": (
        dualface.model,
        "to_channels_last",
        _all_channels_last,
        dualface.model.to_channels_last,
    ),
    "face and mask drawn by one convolution": (dualface.model, "MERGED_HEADS", False, True),
    "SSIM's blur as banded products": (dualface.losses, "_blur", _dense_blur, dualface.losses._blur),
}


def step_ab(preset: str, dtype: torch.dtype, steps: int, switch: str, rounds: int = 3) -> dict[str, list[float]]:
    """EGs/s of whole training steps with one of SWITCHES off and on, interleaved: one model for each,
    built with the switch in place (the layout of its weights can depend on it), from the same seed."""
    module, setting, off, on = SWITCHES[switch]
    kept, runs, built = getattr(module, setting), {"off": [], "on": []}, {}
    try:
        for _ in range(rounds):
            for name, value in (("off", off), ("on", on)):
                setattr(module, setting, value)
                if name not in built:
                    built[name] = _trainer(preset, dtype)[0]
                runs[name].append(BATCH / timed(built[name], steps))
    finally:
        setattr(module, setting, kept)
    return runs


def _trainer(
    preset: str, dtype: torch.dtype
) -> tuple[Callable[[], None], torch.nn.Module, torch.optim.Optimizer, dict]:
    """One training step of `preset` as `train()` takes it (`compute_losses`, backward, fused Adam) on
    random faces, channels-last; with its model, optimizer and faces."""
    cfg = ModelConfig.from_preset(preset)
    train_cfg = TrainConfig(faces=[Path("a"), Path("b")], model_dir=Path("unused"), preset=preset)
    half = BATCH // 2

    def image() -> torch.Tensor:
        return torch.rand(half, 3, cfg.size, cfg.size).contiguous(memory_format=torch.channels_last)

    ones = torch.ones(half, 1, cfg.size, cfg.size)
    tensors = {n: {"inputs": image(), "targets": image(), "masks": ones, "weights": ones} for n in "ab"}
    torch.manual_seed(0)
    model = dualface.model.to_channels_last(Autoencoder(cfg, ["a", "b"]))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5, fused=True)

    def step() -> None:
        losses, _ = compute_losses(model, tensors, train_cfg, dtype, torch.device("cpu"))
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        optimizer.step()

    return step, model, optimizer, tensors


def step_parts(preset: str, dtype: torch.dtype, steps: int) -> dict[str, float]:
    """Seconds of a whole training step and of its parts: the model's forward and backward alone (its
    outputs summed), and fused Adam's update alone; the rest is the losses and their backward."""
    whole, model, optimizer, tensors = _trainer(preset, dtype)

    def model_only() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            outputs = model({n: t["inputs"] for n, t in tensors.items()})
        model.zero_grad(set_to_none=True)
        sum(
            o.rgb.float().sum() + (o.mask.float().sum() if o.mask is not None else 0) for o in outputs.values()
        ).backward()

    step_s = timed(whole, steps)
    model_s = timed(model_only, steps)
    whole()  # gradients for the optimizer alone
    optimizer_s = timed(optimizer.step, steps)
    return {
        "step": step_s,
        "model": model_s,
        "optimizer": optimizer_s,
        "losses_and_rest": step_s - model_s - optimizer_s,
    }


def _steps_child(preset: str, dtype: torch.dtype, steps: int, keep: bool) -> None:
    """One side of allocator_ab, in a process of its own: glibc's settings cannot be taken back."""
    if keep:
        keep_freed_memory()
    step = _trainer(preset, dtype)[0]
    step()
    print(BATCH / timed(step, steps))


def allocator_ab(preset: str, dtype: str, steps: int, rounds: int = 3) -> dict[str, list[float]]:
    """EGs/s of whole steps with glibc's default allocator settings and with `allocator.keep_freed_memory`,
    each side a fresh process, interleaved."""
    runs: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(rounds):
        for name, mode in (("off", "default"), ("on", "keep")):
            command = [sys.executable, __file__, "--preset", preset, "--steps", str(steps), "--child", mode, dtype]
            out = subprocess.run(command, capture_output=True, text=True, check=True)
            runs[name].append(float(out.stdout.split()[-1]))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="original")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per round and path")
    parser.add_argument("--child", nargs=2, metavar=("ALLOCATOR", "DTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        dtype = torch.bfloat16 if args.child[1] == "bf16" else torch.float32
        return _steps_child(args.preset, dtype, args.steps, args.child[0] == "keep")
    keep_freed_memory()  # as training does
    if not hardware_bf16(torch.device("cpu")):
        raise SystemExit("this CPU emulates bf16: there is nothing to compare (bench/train.py says how slow)")
    peak = peaks(torch.bfloat16, native=True)["matmul_gflop_per_s"]  # bench/train.py's, same run
    rows = []
    print(f"{args.preset}, batch {BATCH}, {torch.get_num_threads()} threads; bf16 matmul peak {peak:.0f} GFLOP/s\n")
    print(f"{'layer':24s} {'input':>18s} {'GFLOP':>6s} {'fp32 f+b ms':>11s} {'bf16 f+b ms':>11s} "
          f"{'bf16 x':>6s} {'bf16 fwd of peak':>16s} {'bf16 bwd of peak':>16s}")  # fmt: skip
    for layer in conv_shapes(args.preset):
        work = flops(layer["module"], layer["input"])
        f32 = layer_times(layer["module"], layer["input"], torch.float32, args.repeats)
        b16 = layer_times(layer["module"], layer["input"], torch.bfloat16, args.repeats)
        backward_work = 2 * work if layer["input"][1] != 3 else work  # grads of input and weights; no input grad
        row = {
            "layer": layer["name"],
            "input": list(layer["input"]),
            "gflop_forward": round(work / 1e9, 3),
            "fp32_ms": {"forward": round(f32[0] * 1e3, 2), "forward_backward": round(f32[1] * 1e3, 2)},
            "bf16_ms": {"forward": round(b16[0] * 1e3, 2), "forward_backward": round(b16[1] * 1e3, 2)},
            "bf16_speedup": round(f32[1] / b16[1], 2),
            "bf16_forward_share_of_peak": round(work / b16[0] / 1e9 / peak, 3),
            "bf16_backward_share_of_peak": round(backward_work / max(b16[1] - b16[0], 1e-9) / 1e9 / peak, 3),
        }
        rows.append(row)
        print(f"{row['layer']:24s} {'x'.join(map(str, row['input'])):>18s} {row['gflop_forward']:6.2f} "
              f"{row['fp32_ms']['forward_backward']:11.1f} {row['bf16_ms']['forward_backward']:11.1f} "
              f"{row['bf16_speedup']:5.2f}x {row['bf16_forward_share_of_peak']:15.0%} "
              f"{row['bf16_backward_share_of_peak']:15.0%}")  # fmt: skip
    total = {d: sum(r[f"{d}_ms"]["forward_backward"] for r in rows) for d in ("fp32", "bf16")}
    print(f"\nall convolutions, forward + backward: fp32 {total['fp32']:.0f} ms, bf16 {total['bf16']:.0f} ms "
          f"({total['fp32'] / total['bf16']:.2f}x)")  # fmt: skip
    steps: dict = {}
    for switch in SWITCHES:
        print(f"\nwhole steps, EGs/s in three interleaved rounds, without | with {switch}")
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            runs = step_ab(args.preset, dtype, args.steps, switch)
            median = {k: sorted(v)[len(v) // 2] for k, v in runs.items()}
            steps.setdefault(switch, {})[name] = {**runs, "ratio_of_medians": round(median["on"] / median["off"], 3)}
            print(f"  {name}: {' '.join(f'{v:.1f}' for v in runs['off'])} | "
                  f"{' '.join(f'{v:.1f}' for v in runs['on'])}  ({median['on'] / median['off']:.2f}x)")  # fmt: skip
    print("\nwhole steps, EGs/s in three interleaved rounds (a fresh process each), without | with freed memory kept")
    for name in ("fp32", "bf16"):
        runs = allocator_ab(args.preset, name, args.steps)
        median = {k: sorted(v)[len(v) // 2] for k, v in runs.items()}
        steps.setdefault("freed memory kept", {})[name] = {
            **runs,
            "ratio_of_medians": round(median["on"] / median["off"], 3),
        }
        print(f"  {name}: {' '.join(f'{v:.1f}' for v in runs['off'])} | "
              f"{' '.join(f'{v:.1f}' for v in runs['on'])}  ({median['on'] / median['off']:.2f}x)")  # fmt: skip
    work = BATCH * train_flops_per_example(ModelConfig.from_preset(args.preset))
    parts = step_parts(args.preset, torch.bfloat16, args.steps)
    at_peak = work / (peak * 1e9)
    breakdown = {
        "ms": {k: round(v * 1e3, 1) for k, v in parts.items()},
        "step_share_of_peak": round(at_peak / parts["step"], 3),
        "model_share_of_peak": round(at_peak / parts["model"], 3),
        # the step's share if the model ran at the peak and its losses and optimizer took what they take
        "ceiling_share_of_peak": round(at_peak / (at_peak + parts["step"] - parts["model"]), 3),
    }
    print(
        f"\nbf16 step, {work / 1e9:.0f} GFLOP of model: " + ", ".join(f"{k} {v} ms" for k, v in breakdown["ms"].items())
    )
    print(f"  share of the bf16 peak: the step {breakdown['step_share_of_peak']:.0%}, the model alone "
          f"{breakdown['model_share_of_peak']:.0%}; with the model at the peak, the step would reach "
          f"{breakdown['ceiling_share_of_peak']:.0%}")  # fmt: skip
    write_result(
        f"layers_{args.preset}",
        {
            "command": f"python bench/layers.py --preset {args.preset}",
            "preset": args.preset,
            "batch": BATCH,
            "threads": torch.get_num_threads(),
            "bf16_matmul_peak_gflop_per_s": round(peak, 1),
            "layers": rows,
            "total_ms": total,
            "steps_egs_per_s": steps,
            "bf16_step_breakdown": breakdown,
            "hardware": hardware(),
        },
    )


if __name__ == "__main__":
    main()
