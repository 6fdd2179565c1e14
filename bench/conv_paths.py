"""Each convolution of a preset, forward + backward in fp32 at training's batch, three ways: oneDNN on a
channels-last input (what training runs), oneDNN on a contiguous one, and `model.Conv2d`'s matrix-product
path (im2col columns, one matmul), which training takes only for small deep maps.

    python bench/conv_paths.py --preset lite128 --name conv_paths_lite128-xeon

The question it answers: on a CPU whose 1x1 convolutions run far below its fp32 matmul (a 2-core Xeon
without native bf16: 109 against 326 GFLOP/s, bench/results/train-xeon.json), would the matmul path pay on
more layers than the small maps it is used on? Works on any CPU (bench/layers.py needs native bf16).
"""

import argparse

import torch

import dualface.model
from common import hardware, write_result
from layers import BATCH, conv_shapes, flops, timed

PATHS = ("channels-last", "contiguous", "matmul")


def forward_backward_ms(module: torch.nn.Conv2d, shape: tuple, path: str, repeats: int) -> float:
    conv = dualface.model.Conv2d(
        module.in_channels, module.out_channels, module.kernel_size, module.stride, module.padding, small_map=True
    )
    x = torch.randn(shape)
    if path != "contiguous":
        conv, x = conv.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    if path == "matmul":
        conv.weight.data = conv.weight.data.contiguous()  # as `model.to_channels_last` leaves it on that path
    x.requires_grad_(shape[1] != 3)
    deep, small = dualface.model.DEEP, dualface.model.SMALL_MAP
    if path == "matmul":  # every layer through the matmul path, whatever its map and depth
        dualface.model.DEEP, dualface.model.SMALL_MAP = 0, 2**62
    else:  # every layer through oneDNN
        dualface.model.DEEP = 2**62
    try:
        return timed(lambda: conv(x).sum().backward(), repeats) * 1e3
    finally:
        dualface.model.DEEP, dualface.model.SMALL_MAP = deep, small


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="lite128")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--name", help="bench/results/<name>.json (default: conv_paths_<preset>)")
    args = parser.parse_args()
    rows = []
    print(f"{args.preset}, batch {BATCH}, {torch.get_num_threads()} threads, fp32: forward + backward, ms\n")
    print(f"{'layer':28s} {'input':>16s} {'GFLOP':>6s} " + " ".join(f"{p:>14s}" for p in PATHS))
    for layer in conv_shapes(args.preset):
        ms = {p: forward_backward_ms(layer["module"], layer["input"], p, args.repeats) for p in PATHS}
        rows.append({
            "layer": layer["name"],
            "input": list(layer["input"]),
            "gflop_forward": round(flops(layer["module"], layer["input"]) / 1e9, 3),
            "ms": {p: round(v, 2) for p, v in ms.items()},
        })  # fmt: skip
        print(f"{layer['name']:28s} {'x'.join(map(str, layer['input'])):>16s} {rows[-1]['gflop_forward']:6.2f} "
              + " ".join(f"{v:14.1f}" for v in ms.values()))  # fmt: skip
    total = {p: round(sum(r["ms"][p] for r in rows), 1) for p in PATHS}
    print("\nall convolutions: " + ", ".join(f"{p} {v:.0f} ms" for p, v in total.items()))
    write_result(
        args.name or f"conv_paths_{args.preset}",
        {
            "command": "python bench/conv_paths.py --preset "
            + args.preset
            + (f" --name {args.name}" if args.name else ""),
            "what": "each convolution's fp32 forward + backward at training's batch: oneDNN channels-last, oneDNN "
            "contiguous, and model.Conv2d's matrix-product path forced on every layer",
            "preset": args.preset,
            "batch": BATCH,
            "threads": torch.get_num_threads(),
            "layers": rows,
            "total_ms": total,
            "hardware": hardware(),
        },
    )


if __name__ == "__main__":
    main()
