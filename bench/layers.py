"""Where bf16 training time goes, layer by layer: each convolution of a preset, at training's batch, timed
forward and forward + backward in fp32 and in bf16 (autocast, channels-last, as training runs them), with
its share of this machine's bf16 peak measured in the same run.

    python bench/layers.py                      # original: bench/results/layers_original.json
    python bench/layers.py --preset lite128

The question it answers (issue 14): when a preset's bf16 step sits far below the bf16 peak, is it
dualface's overhead (casts, optimizer, the loop) or the convolutions themselves? The layers above are timed
as oneDNN runs them (nn.Conv2d). Then whole training steps (`train.compute_losses`, backward, fused Adam, on
random faces) with each of SWITCHES off and on (`model.Conv2d`'s matrix-product path for small deep maps;
the decoders' face and mask heads as one convolution; SSIM's blur over contiguous rows), interleaved in
three rounds, so the machine's drift from minute to minute falls on both alike.
"""

import argparse
import time
from pathlib import Path

import torch

import dualface.losses
import dualface.model
from common import hardware, write_result
from dualface.config import TrainConfig
from dualface.model import Autoencoder, ModelConfig
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


def _strided_blur(t: torch.Tensor) -> torch.Tensor:
    """SSIM's blur as it was: the products taken over channels-last rows where they lie, strided."""
    along_w = t @ dualface.losses._blur_matrix(t.shape[-1], t.device, t.dtype)
    return (along_w.transpose(-1, -2) @ dualface.losses._blur_matrix(t.shape[-2], t.device, t.dtype)).transpose(-1, -2)


# What the whole-step comparison turns off and on: a module's setting, its value off and on.
SWITCHES = {
    "small deep maps as matmuls": (dualface.model, "DEEP", 2**62, dualface.model.DEEP),
    "face and mask drawn by one convolution": (dualface.model, "MERGED_HEADS", False, True),
    "SSIM's blur over contiguous rows": (dualface.losses, "_blur", _strided_blur, dualface.losses._blur),
}


def step_ab(preset: str, dtype: torch.dtype, steps: int, switch: str, rounds: int = 3) -> dict[str, list[float]]:
    """EGs/s of whole training steps with one of SWITCHES off and on, interleaved."""
    torch.manual_seed(0)
    cfg = ModelConfig.from_preset(preset)
    model = Autoencoder(cfg, ["a", "b"]).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5, fused=True)
    train_cfg = TrainConfig(faces=[Path("a"), Path("b")], model_dir=Path("unused"), preset=preset)
    size, half = cfg.size, BATCH // 2

    def image() -> torch.Tensor:
        return torch.rand(half, 3, size, size).contiguous(memory_format=torch.channels_last)

    ones = torch.ones(half, 1, size, size)
    tensors = {n: {"inputs": image(), "targets": image(), "masks": ones, "weights": ones} for n in "ab"}

    def step() -> None:
        losses, _ = compute_losses(model, tensors, train_cfg, dtype, torch.device("cpu"))
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        optimizer.step()

    module, setting, off, on = SWITCHES[switch]
    kept, runs = getattr(module, setting), {"off": [], "on": []}
    try:
        for _ in range(rounds):
            for name, value in (("off", off), ("on", on)):
                setattr(module, setting, value)
                runs[name].append(BATCH / timed(step, steps))
    finally:
        setattr(module, setting, kept)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="original")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per round and path")
    args = parser.parse_args()
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
            "hardware": hardware(),
        },
    )


if __name__ == "__main__":
    main()
