"""Time to a usable swap: train `lite` in chunks and, after each, measure whether swaps follow the source's
mouth on held-out frames (Pearson r of mouth opening, source vs swap; "usable" is r >= 0.5).

    python bench/time_to_swap.py A_FACES B_FACES HELD_OUT_A_FACES --minutes 40

Face folders come from `dualface extract`. The wall time counted is training only (not loading faces or
measuring); both are in bench/results/time_to_swap.json with the r after every chunk.
"""

import argparse
import json
from pathlib import Path

from common import hardware, write_result
from dualface.augment import AugmentConfig
from dualface.checkpoint import load_model
from dualface.evaluate import mouth_sync
from dualface.train import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("faces_a", type=Path)
    parser.add_argument("faces_b", type=Path)
    parser.add_argument("held_out", type=Path, help="faces of A from clips not used for training")
    parser.add_argument("--model", type=Path, default=Path("/tmp/time_to_swap"))
    parser.add_argument("--minutes", type=float, default=40)
    parser.add_argument("--chunk", type=int, default=300, help="steps between measurements")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--preset", default="lite")
    parser.add_argument("--target", type=float, default=0.5)
    parser.add_argument("--warp", type=float, default=None, help="random-warp strength (default: AugmentConfig's)")
    parser.add_argument("--cycle", type=float, default=0.0, help="latent cycle-consistency weight")
    parser.add_argument("--shared", type=int, default=None, help="decoder upscales shared by the identities")
    parser.add_argument("--measure-faces", type=int, default=250)
    parser.add_argument("--out", default="time_to_swap", help="name of the bench/results/*.json to write")
    args = parser.parse_args()

    held = sorted(args.held_out.glob("*.png"))
    held = held[:: max(1, len(held) // args.measure_faces)][: args.measure_faces]
    target_name = args.faces_b.name
    history, trained_s, step, reached = [], 0.0, 0, None
    overrides = {"lr": args.lr} if args.lr else {}
    if args.warp is not None:
        overrides["augment"] = AugmentConfig(warp=args.warp)
    overrides["cycle_weight"] = args.cycle
    overrides["shared_upscales"] = args.shared
    while trained_s < args.minutes * 60:
        cfg = TrainConfig(
            faces=[args.faces_a, args.faces_b],
            model_dir=args.model,
            preset=args.preset,
            iterations=step + args.chunk,
            resume=step > 0,
            progress=False,
            tensorboard=False,
            preview_every=args.chunk,
            save_every=args.chunk,
            **overrides,
        )
        summary = train(cfg)
        trained_s += summary.seconds
        step = summary.step
        sync = mouth_sync(load_model(args.model), held, target_name)
        row = {
            "step": step,
            "train_seconds": round(trained_s, 1),
            "r": round(sync.r, 3),
            "r_input_ceiling": round(sync.r_input, 3),
            "egs_per_s": round(summary.examples_per_second, 1),
            "losses": {k: round(v, 4) for k, v in summary.losses.items()},
        }
        history.append(row)
        print(json.dumps(row), flush=True)
        if reached is None and sync.r >= args.target:
            reached = row
            break
    result = {
        "preset": args.preset,
        "lr": cfg.lr,
        "batch_size": cfg.batch_size,
        "warp": cfg.augment.warp,
        "cycle_weight": cfg.cycle_weight,
        "shared_upscales": args.shared,
        "a": str(args.faces_a),
        "b": str(args.faces_b),
        "held_out_faces": len(held),
        "target_r": args.target,
        "reached": reached,
        "history": history,
        "hardware": hardware(),
    }
    write_result(args.out, result)
    verdict = (
        f"r >= {args.target} after {reached['train_seconds'] / 60:.1f} min, {reached['step']} steps"
        if reached
        else f"r < {args.target} after {trained_s / 60:.1f} min"
    )
    print(f"time to a usable swap: {verdict}")


if __name__ == "__main__":
    main()
