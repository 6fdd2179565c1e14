"""Stage 2, training: reconstruct every identity through the shared encoder and its own decoder.

One explicit loop, top to bottom: batches come from a background thread (augmentation releases the GIL);
the learning rate is a pure function of the step; a two-batch sanity check runs before the loop; previews,
the CSV/TensorBoard log and checkpoints are written every N steps and at exit. Every batch is drawn from
an RNG seeded by (seed, rank, step), so `--resume` replays the same data an uninterrupted run would see,
and under `torchrun` every process draws different faces (distributed sampling).
"""

import contextlib
import csv
import functools
import io
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from dualface import expression, gan
from dualface.allocator import keep_freed_memory
from dualface.augment import Batch, sample_batch
from dualface.checkpoint import (
    digest,
    latest_checkpoint,
    load_checkpoint,
    load_optimizer,
    save_checkpoint,
)
from dualface.config import AugmentConfig, TrainConfig
from dualface.data import FaceSet, center_crop, load_face_set
from dualface.distributed import Distributed, any_rank, highest, setup_distributed
from dualface.errors import DualfaceError
from dualface.files import (
    EVAL_LOG,
    TRAINING_LOG,
    FolderLock,
    atomic_write_bytes,
    ensure_writable_dir,
    remove_stale_temps,
)
from dualface.heldout import clip_of, figure_names, held_out_clips, held_out_figures
from dualface.interrupts import Stop, stop_signals
from dualface.lanes import Lanes
from dualface.losses import LOSSES
from dualface.metrics import rank
from dualface.model import Autoencoder, ModelConfig, to_channels_last
from dualface.precision import pick_device, pick_dtype, wants_channels_last
from dualface.prefetch import prefetch
from dualface.preview import plot_loss_curve, preview_grid, save_png
from dualface.recentre import code_faces, code_stats
from dualface.runstate import (
    init_point,
    renamed,
    resume_point,
    roll_back,
    save,
    settled,
    start_average,
    update_average,
)
from dualface.threads import ThreadPolicy, cores

log = logging.getLogger(__name__)


@dataclass
class TrainSummary:
    step: int
    seconds: float
    examples_per_second: float  # faceswap's EGs/s: batch x identities x iterations / seconds
    losses: dict[str, float]
    stopped_by: str
    checkpoint: Path | None
    weights_sha256: str  # of the final weights: replicas under torchrun must agree


# The parts that draw faces (`--no-init-decoders` leaves them fresh): decoders, or LIAE's decoder and bottlenecks.
DRAWING = ("decoders.", "decoder.", "inters.")


def learning_rate(step: int, base: float, warmup: int, progress: float = 0.0, decay: float = 0.0) -> float:
    """Linear warmup over `warmup` steps; then, over the last `decay` share of the run (`progress` in [0, 1]),
    a half cosine down to a tenth of `base`."""
    rate = base * min(1.0, (step + 1) / max(warmup, 1))
    if decay and progress > 1 - decay:
        t = min(1.0, (progress - (1 - decay)) / decay)
        rate *= 0.1 + 0.45 * (1 + math.cos(math.pi * t))
    return rate


def run_progress(cfg: TrainConfig, step: int, stop_step: int | None, elapsed: float) -> float:
    """How far through its budget the run is once `step` steps are done, 0 to 1: the furthest of steps and
    time."""
    shares = [step / stop_step] if stop_step else []
    if cfg.time_limit is not None:
        shares.append(elapsed / cfg.time_limit)
    return min(1.0, max(shares, default=0.0))


# ---------------------------------------------------------------------------------------------------------
# distributed: torchrun sets RANK / WORLD_SIZE / LOCAL_RANK


# ---------------------------------------------------------------------------------------------------------
# data


def _others(sets: list[FaceSet], one: FaceSet) -> list[FaceSet]:
    return [s for s in sets if s is not one]


def batch_stream(
    sets: list[FaceSet], size: int, batch: int, cfg: AugmentConfig, seed: int, rank: int, start: int
) -> Iterator[tuple[int, dict[str, Batch]]]:
    """Batches for step `start` onwards; each step's draw depends only on (seed, rank, step)."""
    step = start
    while True:
        rng = np.random.default_rng([seed, rank, step])
        yield step, {s.name: sample_batch(s, size, batch, rng, cfg, _others(sets, s)) for s in sets}
        step += 1


def _prefetching(device: torch.device, threads: ThreadPolicy) -> bool:
    """Whether batches are augmented ahead in a thread: on a GPU, where a core is spare, or beside lanes
    (a shared CPU, where each lane has a core's share and the main thread would leave them idle while it
    augments). Where torch's threads fill an idle CPU, that thread takes a core and the GIL from them in
    the middle of each step: `lite128` trained at 76 EGs/s with it and 86 without, on 2 cores."""
    return device.type == "cuda" or threads.lanes > 1 or threads.current < cores()


def to_tensors(batches: dict[str, Batch], device: torch.device, channels_last: bool) -> dict[str, dict]:
    def image(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(a).to(device).permute(0, 3, 1, 2).float().div_(255)  # (B, 3, S, S)
        return t.contiguous(memory_format=torch.channels_last) if channels_last else t.contiguous()

    return {
        name: {
            "inputs": image(b.inputs),
            "targets": image(b.targets),
            "masks": torch.from_numpy(b.masks).to(device)[:, None],  # (B, 1, S, S)
            "weights": torch.from_numpy(b.weights).to(device)[:, None],
            "expressions": torch.from_numpy(b.expressions).to(device),  # (B, 2)
        }
        for name, b in batches.items()
    }


def compute_losses(
    model: torch.nn.Module,
    tensors: dict[str, dict],
    cfg: TrainConfig,
    dtype: torch.dtype,
    device: torch.device,
    swap: bool = False,
) -> tuple[dict[str, torch.Tensor], dict]:
    """Each identity's masked reconstruction loss (plus its mask loss, with a learned mask, and its cycle
    loss, with --cycle-weight), and the model's outputs; with `swap` (or a cycle), their first faces drawn
    as the next identity too."""
    loss_fn = LOSSES[cfg.loss]
    with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
        cycle = cfg.cycle_weight > 0
        swaps = cfg.swap_faces if swap or cycle else 0
        outputs = model({name: t["inputs"] for name, t in tensors.items()}, swap=swaps, cycle=cycle)
    losses = {}
    for name, t in tensors.items():
        out = outputs[name]
        weight = t["masks"] * t["weights"] + cfg.background_weight * (1 - t["masks"])
        loss = loss_fn(out.rgb.float(), t["targets"], weight)
        if out.mask is not None:
            loss = loss + cfg.mask_loss_weight * (out.mask.float() - t["masks"]).abs().mean()
        if out.cycled is not None:
            code = out.code[: len(out.cycled)].detach().float()
            # Weighted as the reconstruction is (eyes and mouth up), the weights pooled to the code's cells:
            # the expression is what a swap must carry back, more than the cheeks' shading.
            where = F.adaptive_avg_pool2d(t["weights"][: len(code)], code.shape[-2:])
            drift = ((out.cycled.float() - code).abs() * where).mean() / (code.abs() * where).mean().clamp_min(1e-6)
            loss = loss + cfg.cycle_weight * drift
        losses[name] = loss
    return losses, outputs


def step_loss(
    faces: dict[str, dict],
    model: torch.nn.Module,
    cfg: TrainConfig,
    dtype: torch.dtype,
    device: torch.device,
    critic: torch.nn.Module | None = None,
    code_critic: torch.nn.Module | None = None,
    judge: torch.nn.Module | None = None,
) -> tuple[torch.Tensor, dict]:
    """What a step minimises on `faces`: the reconstruction losses, plus the critics' verdicts where they
    judge; with the losses by identity, and the drawn faces and codes (for the critics' own steps)."""
    losses, outputs = compute_losses(model, faces, cfg, dtype, device, swap=judge is not None)
    total = sum(losses.values())
    drawn = {name: outputs[name].rgb.float() for name in faces} if critic is not None or judge is not None else {}
    codes = {name: outputs[name].code.float() for name in faces} if code_critic is not None else {}
    # The reconstruction losses alone stay what is logged and what picks the best weights.
    if critic is not None:
        total = total + cfg.gan_power * sum(
            gan.generator_loss(critic, drawn[name], t["masks"]) for name, t in faces.items()
        )
    if code_critic is not None:
        total = total + cfg.code_power * sum(gan.confusion_loss(code_critic, code) for code in codes.values())
    if judge is not None:  # each identity's swaps, held to their own sources' openings
        total = total + cfg.expression_weight * sum(
            expression.swap_loss(judge, (swap := outputs[name].swap), t["expressions"][: len(swap)])
            for name, t in faces.items()
        )
    return total, {"losses": losses, "drawn": drawn, "codes": {name: c.detach() for name, c in codes.items()}}


# ---------------------------------------------------------------------------------------------------------
# the loop


def train(cfg: TrainConfig) -> TrainSummary:
    cfg = settled(cfg)
    device = pick_device(cfg.device)
    if cfg.processes > 1 and device.type != "cpu":
        raise DualfaceError(f"--processes is for CPUs (device {device}): on GPUs, torchrun one process per GPU")
    if cfg.batch_size % cfg.processes:
        raise DualfaceError(f"--batch-size {cfg.batch_size} must be a multiple of --processes {cfg.processes}")
    ctx = setup_distributed(device)
    if cfg.processes > 1:
        if ctx.world != cfg.processes:
            raise DualfaceError(f"--processes {cfg.processes}: the `dualface train` command starts them; here is one")
        cfg = replace(cfg, batch_size=cfg.batch_size // cfg.processes, threads=1)  # a step's faces as one's
    if device.type == "cuda" and ctx.world > 1:
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)  # NCCL's communicators work on the current device
    dtype = pick_dtype(cfg.precision, device)
    channels_last = wants_channels_last(device) if cfg.channels_last is None else cfg.channels_last
    if ctx.main:
        ensure_writable_dir(cfg.model_dir)
    # One writer per model folder: a second run would mix its checkpoints and log rows with the first's.
    with FolderLock(cfg.model_dir, "train") if ctx.main else contextlib.nullcontext():
        if ctx.main:
            remove_stale_temps(cfg.model_dir, ".*.tmp")  # what a killed run was writing
        with stop_signals("the checkpoint") as stop:  # SIGTERM (a job runner's stop) saves too, as Ctrl-C does
            return _train(cfg, device, ctx, dtype, channels_last, stop)


def _train(
    cfg: TrainConfig, device: torch.device, ctx: Distributed, dtype: torch.dtype, channels_last: bool, stop: Stop
) -> TrainSummary:
    keep_freed_memory()
    # Lanes of at least 2 faces; under torchrun or --processes, each process is a lane already.
    threads = ThreadPolicy(cfg.threads, split=cfg.batch_size // 2 if ctx.world == 1 else 1)
    if device.type == "cpu":
        threads.start()
    resume_from = resume_point(cfg)
    start_file, start_from = init_point(cfg) if cfg.init and not resume_from else (None, None)
    model_cfg = _model_config(cfg, resume_from, start_from)

    sets = [
        load_face_set(folder, model_cfg, name, cfg.max_faces, progress=cfg.progress and ctx.main)
        for folder, name in zip(cfg.faces, cfg.names, strict=True)
    ]
    held_out = _hold_out(sets, cfg, model_cfg) if cfg.eval_every else {}
    if cfg.best_by != "loss":  # a typo found at the first evaluation would cost the steps before it
        embedded = {s.name for s in sets if s.embedding is not None}
        figures = figure_names(cfg.names, list(held_out), embedded, model_cfg.liae)
        _check_best_by(cfg.best_by, figures)
    _check_batch(cfg, sets)
    torch.manual_seed(cfg.seed)
    model = Autoencoder(model_cfg, cfg.names).to(device)
    if channels_last:
        model = to_channels_last(model)
    for part in cfg.freeze:
        module = getattr(model, part, None)
        if not isinstance(module, torch.nn.Module):
            parts = ", ".join(name for name, _ in model.named_children())
            raise DualfaceError(f"--freeze {part}: this model's parts are {parts}")
        module.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=cfg.lr, betas=(0.5, 0.999), **_fused(device))
    step, lr_scale, best = 0, 1.0, math.inf
    if start_from:
        weights = renamed(start_from, cfg.names)
        if not cfg.init_decoders:
            # A base model's decoders have drawn every face, not this pair's two.
            weights = {k: v for k, v in weights.items() if not k.startswith(DRAWING)}
        missing, unexpected = model.load_state_dict(weights, strict=False)
        if unexpected or any(not k.startswith(DRAWING) or cfg.init_decoders for k in missing):
            raise DualfaceError(f"--init {cfg.init}: its weights do not fit this model ({(unexpected or missing)[0]})")
    if resume_from:
        model.load_state_dict(resume_from.model)
        try:
            load_optimizer(optimizer, resume_from.optimizer)
        except ValueError:
            raise DualfaceError("--resume: the checkpoint trained other parts (repeat the run's --freeze)") from None
        if resume_from.rng is not None:
            torch.set_rng_state(resume_from.rng)
        step = resume_from.step
        lr_scale = resume_from.meta.get("lr_scale", 1.0)
        best = resume_from.meta.get("best_loss", math.inf)
    critics = _critics(cfg, model_cfg, device, resume_from.step if resume_from else None)
    critic, code_critic, judge = (
        critics.get(file, (None, None))[0] for file in (gan.CRITIC_FILE, gan.CODE_CRITIC_FILE, expression.JUDGE_FILE)
    )
    average = start_average(model, resume_from, cfg)
    shown = average if average is not None else model  # what previews, held-out figures and best.safetensors use
    train_model: torch.nn.Module = model
    if ctx.world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    meta_base = {
        "model_config": model_cfg.to_dict(),
        "identities": cfg.names,
        # The file, where --init named a folder; a resumed run keeps the record of where it started.
        "init": str(start_file) if start_file else resume_from.meta.get("init") if resume_from else None,
        "init_decoders": cfg.init_decoders,
        # For `convert --from`: which faces in a frame are this identity's.
        "embeddings": {s.name: np.round(s.embedding, 5).tolist() for s in sets if s.embedding is not None},
        "train": {
            k: v for k, v in asdict(cfg).items() if k in ("preset", "batch_size", "lr", "loss", "seed", "processes")
        },  # batch_size: a worker's, with --processes
        # For `evaluate`: the target's own faces, the reference for sharpness and the identity gap.
        "faces": {name: str(Path(folder).resolve()) for name, folder in zip(cfg.names, cfg.faces, strict=True)},
    }
    preview_faces = _preview_faces(sets, model_cfg, device, cfg)
    # each checkpoint stores their code statistics, which `convert` recentres a new recording by
    stored_faces = {s.name: code_faces(s.faces, s.landmarks, model_cfg.size) for s in sets}

    largest = max(len(s) for s in sets)
    steps_per_epoch = largest / (cfg.batch_size * ctx.world)
    stop_step = _stop_step(cfg, steps_per_epoch)
    # --warp-off: the stream is rebuilt without the warp at the share, so each step's draw stays its own.
    # --time, --decay and --warp-off count the run's training time, not this session's: a resumed run goes on
    # from where its checkpoint's clock stood (checkpoints before 2026-12-07 did not keep it: from 0).
    before = resume_from.meta.get("seconds", 0.0) if resume_from else 0.0
    warped = not (cfg.warp_off and run_progress(cfg, step, stop_step, before) >= 1 - cfg.warp_off)
    if not warped and ctx.main:
        log.info("random warp off from step %d (--warp-off %g)", step, cfg.warp_off)

    def batches_from(step: int) -> Iterator[tuple[int, dict[str, Batch]]]:
        augment = cfg.augment if warped else replace(cfg.augment, warp=0.0)
        batches = batch_stream(sets, model_cfg.size, cfg.batch_size, augment, cfg.seed, ctx.rank, step)
        return prefetch(batches, depth=3) if ahead else batches

    ahead = _prefetching(device, threads)
    stream = batches_from(step)

    # Sanity check: two small batches through forward and loss before committing to the loop.
    probe_rng = np.random.default_rng(cfg.seed)
    for _ in range(2):
        probe = {s.name: sample_batch(s, model_cfg.size, 2, probe_rng, cfg.augment, _others(sets, s)) for s in sets}
        with torch.no_grad():
            check, _ = compute_losses(model, to_tensors(probe, device, channels_last), cfg, dtype, device)
        if not all(torch.isfinite(v) for v in check.values()):
            raise DualfaceError("the loss is not finite before training started: the faces or settings are broken")

    log_csv = cfg.model_dir / TRAINING_LOG
    if ctx.main:  # rows a killed run logged past its last checkpoint (or before its first) are steps to redo
        for path in (log_csv, cfg.model_dir / EVAL_LOG):
            if resume_from:
                _trim_log(path, resume_from.step)
            else:
                path.unlink(missing_ok=True)
    writer = _tensorboard(cfg, ctx, step)
    # The smoothed loss picks best.safetensors and --target-loss: a resumed run carries it on.
    ema: dict[str, float] = dict(resume_from.meta.get("losses", {})) if resume_from else {}
    stopped_by, start_step, started = "interrupted", step, time.perf_counter()
    best_eval = -math.inf
    if resume_from and cfg.best_by != "loss" and (cfg.model_dir / "best.safetensors").exists():
        lower = cfg.best_by.endswith("/distance")
        best_eval = rank(
            load_checkpoint(cfg.model_dir / "best.safetensors").meta.get("best_score"), "lower" if lower else "higher"
        )
    if ctx.main and cfg.eval_every and step == 0:  # where training starts from: the figure to beat
        best_eval = _evaluate(shown, held_out, sets, cfg, step, writer, best_eval, meta_base, stored_faces)
    # The state to roll back to on a non-finite loss when no checkpoint exists yet.
    snapshot = (step, {k: v.detach().clone() for k, v in model.state_dict().items()})
    bar = tqdm(
        total=stop_step,
        initial=step,
        unit="it",
        disable=not (cfg.progress and ctx.main),
        dynamic_ncols=True,
        desc="training",
    )
    rollbacks, lanes = 0, None
    # A run resumed past its end (the same command again) has nothing to do, and must not take a step more.
    done = _should_stop(cfg, step, stop_step, ema, before) if resume_from else ""
    if done and ctx.main:  # said where it is seen: a user who meant "train 30 minutes more" learns the rule here
        rule = (
            f"{before:.0f} s of --time {cfg.time_limit:.0f} s (it counts the run's time in all)"
            if done == "time"
            else done
        )
        log.warning("%s: already at step %d, past its end (%s): nothing to train", cfg.model_dir, step, rule)
    stopped_by = done or stopped_by
    stop.defer = True  # from here a signal stops the run at a step's end, saved (interrupts.py)
    try:
        while not done:
            data_step, batches = next(stream)
            assert data_step == step, "batch stream out of step"
            progress = run_progress(cfg, step + 1, stop_step, before + time.perf_counter() - started)
            if (cfg.decay or cfg.warp_off) and ctx.world > 1:  # each process's clock differs: one switch for all
                progress = highest(progress, ctx)
            lr = learning_rate(step, cfg.lr, cfg.warmup, progress, cfg.decay) * lr_scale
            # A rollback past the switch replays its steps unwarped: the share is of the run, not of steps.
            if warped and cfg.warp_off and progress >= 1 - cfg.warp_off:
                warped = False
                stream.close()
                stream = batches_from(step + 1)
                if ctx.main:
                    log.info("random warp off from step %d (--warp-off %g)", step + 1, cfg.warp_off)
            for group in optimizer.param_groups:
                group["lr"] = lr
            tensors = to_tensors(batches, device, channels_last)
            adversarial = critic is not None and step >= cfg.gan_after
            part_loss = functools.partial(
                step_loss,
                model=train_model,
                cfg=cfg,
                dtype=dtype,
                device=device,
                critic=critic if adversarial else None,
                code_critic=code_critic,
                judge=judge if judge is not None and step >= cfg.gan_after else None,
            )
            if lanes is not None and (lanes.count, lanes.threads) != (threads.lanes, threads.current):
                lanes.close()
                lanes = None
                if threads.lanes == 1:
                    log.info("the CPU is idle again: training on %d threads", threads.current)
            if threads.lanes > 1:  # a shared CPU: the batch in parts, each on a core (lanes.py)
                if lanes is None:
                    lanes = Lanes(threads.lanes, threads.current)
                    log.info("the CPU is shared: training in %d lanes of %d thread(s)", lanes.count, lanes.threads)
                total, parts = lanes.gradients(tensors, part_loss, trainable)
            else:
                total, extras = part_loss(tensors)
                parts = [(1.0, extras)]
            losses = {name: sum(share * e["losses"][name].detach() for share, e in parts) for name in tensors}
            drawn = {name: torch.cat([e["drawn"][name].detach() for _, e in parts]) for name in parts[0][1]["drawn"]}
            codes = {name: torch.cat([e["codes"][name] for _, e in parts]) for name in parts[0][1]["codes"]}
            if any_rank(not torch.isfinite(total), ctx):
                rollbacks += 1
                if rollbacks > 5:
                    raise DualfaceError("the loss keeps diverging (NaN/inf) even at a lower learning rate")
                lr_scale *= 0.5
                step = roll_back(model, optimizer, cfg, snapshot, ctx)
                if average is not None:  # start the average afresh from the restored weights
                    average.load_state_dict(model.state_dict())
                log.warning("non-finite loss: rolled back to step %d, learning rate x%.3g", step, lr_scale)
                stream.close()
                stream = batches_from(step)
                bar.n = step
                continue
            if lanes is None:  # lanes set the gradients themselves
                optimizer.zero_grad(set_to_none=True)
                total.backward()
            torch.nn.utils.clip_grad_norm_(trainable, cfg.clip)
            optimizer.step()
            critic_losses = _critic_updates(critics, tensors, drawn, codes, cfg.names, ctx, adversarial)
            step += 1
            if average is not None:
                update_average(average, model, cfg.average, step)
            values = {name: v.item() for name, v in losses.items()}
            if device.type == "cpu":
                threads.update()
                if _prefetching(device, threads) != ahead:  # the same batches either way: each is the step's own
                    ahead = not ahead
                    stream.close()
                    stream = batches_from(step)
            for name, v in values.items():
                ema[name] = v if name not in ema else 0.98 * ema[name] + 0.02 * v
            elapsed = time.perf_counter() - started
            egs = (step - start_step) * cfg.batch_size * len(sets) * ctx.world / max(elapsed, 1e-9)
            if ctx.main:
                _log_row(log_csv, step, before + elapsed, lr, values, egs)
                if writer is not None:
                    scalars = {**{f"loss/{name}": v for name, v in values.items()}, "egs_per_s": egs, **critic_losses}
                    for tag, v in scalars.items():
                        writer.add_scalar(tag, v, step)
                bar.update(1)
                bar.set_postfix(
                    {
                        **{n: f"{v:.4f}" for n, v in ema.items()},
                        "EGs/s": f"{egs:.1f}",
                        **_eta(cfg, step, start_step, stop_step, elapsed, before),
                    },
                    refresh=False,
                )
            reason = "interrupted" if stop.asked else _should_stop(cfg, step, stop_step, ema, before + elapsed)
            # Every process must stop at the same step, or the others wait forever.
            if ctx.world > 1 and any_rank(bool(reason), ctx):
                reason = reason or "another process stopped"
            if ctx.main and step % cfg.preview_every == 0:
                _write_preview(shown, preview_faces, cfg, step, writer)
            # The last step is measured too: it may be the best, and a run shorter than --eval-every (the
            # demo's at 50) would otherwise keep the weights it started from as best.safetensors.
            last = reason and reason != "interrupted"
            if ctx.main and cfg.eval_every and (step % cfg.eval_every == 0 or last):
                best_eval = _evaluate(shown, held_out, sets, cfg, step, writer, best_eval, meta_base, stored_faces)
            if step % cfg.save_every == 0 or reason:
                meta_base["seconds"] = round(before + elapsed, 3)
                if ctx.main:
                    meta_base["codes"] = code_stats(shown, stored_faces)
                best = save(model, optimizer, step, cfg, ctx, meta_base, lr_scale, ema, best, average)
                if ctx.main:
                    _save_critics(cfg, critics, step)
                snapshot = (step, {k: v.detach().clone() for k, v in model.state_dict().items()})
                rollbacks = 0
            if reason:
                stopped_by = reason
                break
    finally:
        stop.defer = False
        if lanes is not None:
            lanes.close()
        bar.close()
        stream.close()
        if writer is not None:
            writer.close()
    if ctx.main:
        _write_preview(shown, preview_faces, cfg, step, None)
        if log_csv.exists():
            plot_loss_curve(log_csv, cfg.model_dir / "loss.png")
    elapsed = time.perf_counter() - started
    egs = (step - start_step) * cfg.batch_size * len(sets) * ctx.world / max(elapsed, 1e-9)
    return TrainSummary(
        step, elapsed, egs, dict(ema), stopped_by, latest_checkpoint(cfg.model_dir), weights_digest(model)
    )


def _model_config(cfg: TrainConfig, resume_from, start_from) -> ModelConfig:
    """The model's shape: the checkpoint's it continues or starts from, else the preset's with this run's
    overrides; settings that contradict it are refused before any faces load (a typo costs nothing)."""
    if resume_from:
        model_cfg = ModelConfig(**resume_from.meta["model_config"])
    elif start_from:
        model_cfg = ModelConfig(**start_from.meta["model_config"])
        if model_cfg.liae:  # the swap identity, by this run's name for it
            model_cfg.liae = dict(zip(start_from.meta["identities"], cfg.names, strict=True))[model_cfg.liae]
    else:
        shape = ("shared_upscales", "learn_mask", "liae", "coverage")
        overrides = {k: v for k in shape if (v := getattr(cfg, k)) is not None}
        model_cfg = ModelConfig.from_preset(cfg.preset, **overrides)
    if resume_from and resume_from.meta["identities"] != cfg.names:
        raise DualfaceError(f"{cfg.model_dir} was trained on {resume_from.meta['identities']}, not {cfg.names}")
    if model_cfg.liae and model_cfg.liae not in cfg.names:
        raise DualfaceError(f"--liae {model_cfg.liae}: not one of the identities ({', '.join(cfg.names)})")
    if model_cfg.liae and cfg.cycle_weight > 0:
        raise DualfaceError("--cycle-weight: an LIAE model has a single decoder to cycle through")
    if model_cfg.liae and cfg.expression_weight > 0:
        raise DualfaceError("--expression-weight: an LIAE model has a single decoder, and no swap to judge in training")
    if model_cfg.liae and cfg.code_power > 0:
        raise DualfaceError("--code-power: an LIAE model's codes carry the identity by design (its own bottleneck)")
    if cfg.liae is not None and cfg.liae != model_cfg.liae:  # the shape came from the checkpoint
        built = f"as LIAE into {model_cfg.liae}" if model_cfg.liae else "with a decoder per identity"
        raise DualfaceError(f"--liae {cfg.liae}: the model it continues was built {built}")
    if cfg.coverage is not None and cfg.coverage != model_cfg.coverage:  # the crop came from the checkpoint
        raise DualfaceError(f"--coverage {cfg.coverage}: the checkpoint it starts from crops at {model_cfg.coverage}")
    # The rest of the shape too: a setting that cannot apply is refused, never silently dropped.
    if start_from and model_cfg.preset != cfg.preset:  # (--resume refuses it in `resume_point`)
        raise DualfaceError(f"--preset {cfg.preset}: --init {cfg.init} is a '{model_cfg.preset}' model")
    for key in ("shared_upscales", "learn_mask"):
        given = getattr(cfg, key)
        if given is not None and given != getattr(model_cfg, key):
            flag = "--" + key.replace("_", "-")
            raise DualfaceError(f"{flag} {given}: the checkpoint it starts from has {getattr(model_cfg, key)}")
    return model_cfg


def _critics(
    cfg: TrainConfig, model_cfg: ModelConfig, device: torch.device, resumed: int | None
) -> dict[str, tuple[torch.nn.Module, torch.optim.Optimizer]]:
    """The critics a run trains, by file, each with its optimizer (a resumed run's, restored, `resumed`
    being the model's step): the patch critic where --gan-power asks for one, the code critic where
    --code-power does."""
    wanted: dict[str, torch.nn.Module] = {}
    if cfg.gan_power:
        wanted[gan.CRITIC_FILE] = gan.PatchCritic()
    if cfg.code_power:  # it judges what each identity's own decoder receives: after the shared trunk
        channels = model_cfg.decoder_widths[model_cfg.shared_upscales]
        wanted[gan.CODE_CRITIC_FILE] = gan.CodeCritic(channels, len(cfg.names))
    if cfg.expression_weight:
        wanted[expression.JUDGE_FILE] = expression.ExpressionJudge()
    critics = {}
    for file, critic in wanted.items():
        critic = critic.to(device)
        optimizer = torch.optim.Adam(critic.parameters(), lr=cfg.lr, betas=(0.5, 0.999), **_fused(device))
        saved = gan.load_critic(cfg.model_dir, critic, optimizer, file) if resumed is not None else None
        if resumed is not None and saved is None:
            log.warning("--resume: no %s in %s; that critic starts afresh", file, cfg.model_dir)
        elif saved is not None and saved != resumed:  # the newest checkpoint was damaged: the model went back
            log.warning("--resume: %s is from step %d, the model from step %d; it goes on", file, saved, resumed)
        critics[file] = (critic, optimizer)
    return critics


def _critic_updates(
    critics: dict, tensors: dict, drawn: dict, codes: dict, names: list[str], ctx: Distributed, adversarial: bool
) -> dict[str, float]:
    """One step of each critic the run trains, after the model's: their losses, by TensorBoard tag."""
    losses = {}
    if adversarial:
        critic = critics[gan.CRITIC_FILE][0]
        judged = (gan.critic_loss(critic, t["targets"], drawn[name], t["masks"]) for name, t in tensors.items())
        losses["critic/patch"] = _critic_step(*critics[gan.CRITIC_FILE], sum(judged), ctx)
    if gan.CODE_CRITIC_FILE in critics:  # a critic that cannot tell scores ln N per identity, summed here
        code_critic = critics[gan.CODE_CRITIC_FILE][0]
        guessed = (gan.code_critic_loss(code_critic, c, names.index(name)) for name, c in codes.items())
        losses["critic/code"] = _critic_step(*critics[gan.CODE_CRITIC_FILE], sum(guessed), ctx)
    if expression.JUDGE_FILE in critics:  # every step, on real faces and on the faces drawn as themselves
        judge = critics[expression.JUDGE_FILE][0]
        read = [expression.judge_loss(judge, t["targets"], t["expressions"]) for t in tensors.values()]
        read += [expression.judge_loss(judge, drawn[name], tensors[name]["expressions"]) for name in drawn]
        losses["critic/expression"] = _critic_step(*critics[expression.JUDGE_FILE], sum(read), ctx)  # mean error
    return losses


def _critic_step(
    critic: torch.nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor, ctx: Distributed
) -> float:
    """One step of a critic on its loss; the loss, for the log."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if ctx.world > 1:  # one critic for all processes: average its gradients as DDP does the model's
        for p in critic.parameters():
            torch.distributed.all_reduce(p.grad)
            p.grad /= ctx.world
    optimizer.step()
    return loss.item()


def _save_critics(cfg: TrainConfig, critics: dict, step: int) -> None:
    for file, (critic, optimizer) in critics.items():
        gan.save_critic(cfg.model_dir, critic, optimizer, step, file)


def weights_digest(model: torch.nn.Module) -> str:
    return digest(model.state_dict())


def _fused(device: torch.device) -> dict[str, Any]:
    """Fused Adam: one kernel for all parameters (CPU support since torch 2.4)."""
    return {"fused": True} if device.type in ("cpu", "cuda") else {}


def _hold_out(sets: list[FaceSet], cfg: TrainConfig, model_cfg: ModelConfig) -> dict:
    """Faces for `--eval-every`, as model crops: an identity's `--held-out` folder, else its last whole
    clips (taken out of training here); an identity whose faces come from one clip has none."""
    held = {}
    for i, faces in enumerate(sets):
        if faces.name in cfg.held_out:
            other = load_face_set(cfg.held_out[faces.name], model_cfg, faces.name, cfg.eval_faces)
            held[faces.name] = center_crop(other.faces, other.landmarks, model_cfg.size)
            continue
        clips = held_out_clips(faces.files)
        if not clips:
            log.info("%s: faces from one clip; none held out (give --held-out %s=FOLDER)", faces.name, faces.name)
            continue
        out = np.array([clip_of(f) in clips for f in faces.files])
        chosen = np.flatnonzero(out)
        chosen = chosen[np.linspace(0, len(chosen) - 1, min(cfg.eval_faces, len(chosen))).round().astype(int)]
        held[faces.name] = center_crop(faces.faces[chosen], faces.landmarks[chosen], model_cfg.size)
        keep = np.flatnonzero(~out)
        sets[i] = FaceSet(
            faces.name, faces.faces[keep], faces.landmarks[keep], [faces.files[k] for k in keep], faces.embedding
        )
        log.info("%s: held out %d faces of clips %s", faces.name, len(chosen), ", ".join(sorted(clips)))
    if not held:
        raise DualfaceError(
            "--eval-every needs faces that are not trained on: give --held-out NAME=FOLDER, or faces from two or "
            "more clips of an identity (its last clips are then held out whole)"
        )
    return held


def _evaluate(
    model, held_out, sets, cfg: TrainConfig, step: int, writer, best: float, meta_base: dict, stored_faces: dict
) -> float:
    """Log the held-out figures; with `best_by` naming one of them, keep the model that scores highest on
    it as best.safetensors (an undefined figure ranks below every number), with its own code statistics
    (`convert` recentres by them). Returns the best score so far."""
    embeddings = {s.name: s.embedding for s in sets if s.embedding is not None}
    figures = held_out_figures(model, held_out, embeddings)
    row = [step, *("" if v is None else f"{v:.4f}" for v in figures.values())]
    _append_figures(cfg.model_dir / EVAL_LOG, ["step", *figures], row)
    if writer is not None:
        for key, value in figures.items():
            if value is not None:
                writer.add_scalar(f"eval/{key}", value, step)
    shown = ", ".join(f"{k} {'undefined' if v is None else f'{v:.3f}'}" for k, v in figures.items())
    tqdm.write(f"step {step} held-out: {shown}")
    if cfg.best_by == "loss":
        return best
    _check_best_by(cfg.best_by, figures)  # checked before the first step (`figure_names`): the two must agree
    aim = "lower" if cfg.best_by.endswith("/distance") else "higher"
    if rank(figures[cfg.best_by], aim) > best:
        best = rank(figures[cfg.best_by], aim)
        meta = {**meta_base, "codes": code_stats(model, stored_faces), "best_by": cfg.best_by}
        meta |= {"best_score": figures[cfg.best_by], "eval": figures}
        save_checkpoint(cfg.model_dir / "best.safetensors", model, None, step, meta)
    return best


def _check_best_by(best_by: str, figures) -> None:
    if best_by not in figures:
        raise DualfaceError(f"--best-by {best_by!r}: the held-out figures are {', '.join(figures)}")


def _check_batch(cfg: TrainConfig, sets: list[FaceSet]) -> None:
    """A batch larger than a face set only repeats its faces, at the memory cost of distinct ones."""
    smallest = min(sets, key=len)
    if cfg.batch_size > len(smallest):
        raise DualfaceError(
            f"--batch-size {cfg.batch_size} is more than the {len(smallest)} faces of {smallest.name}: "
            f"use at most {len(smallest)}"
        )


def _stop_step(cfg: TrainConfig, steps_per_epoch: float) -> int | None:
    candidates = []
    if cfg.iterations is not None:
        candidates.append(cfg.iterations)
    if cfg.epochs is not None:
        candidates.append(math.ceil(cfg.epochs * steps_per_epoch))
    return min(candidates) if candidates else None


def _should_stop(cfg: TrainConfig, step: int, stop_step: int | None, ema: dict[str, float], elapsed: float) -> str:
    if stop_step is not None and step >= stop_step:
        return "iterations" if cfg.iterations == stop_step else "epochs"
    if cfg.target_loss is not None and step > cfg.warmup and ema and max(ema.values()) <= cfg.target_loss:
        return "target loss"
    if cfg.time_limit is not None and elapsed >= cfg.time_limit:
        return "time"
    return ""


def _eta(
    cfg: TrainConfig, step: int, start: int, stop_step: int | None, elapsed: float, before: float = 0.0
) -> dict[str, str]:
    """Time left: by this session's rate to the step limit, or what the time limit leaves of the run's clock
    (`before`: its seconds before this session)."""
    rate = (step - start) / max(elapsed, 1e-9)
    remaining = []
    if stop_step is not None and rate > 0:
        remaining.append((stop_step - step) / rate)
    if cfg.time_limit is not None:
        remaining.append(cfg.time_limit - before - elapsed)
    if not remaining:
        return {}
    seconds = max(0, int(min(remaining)))
    return {"ETA": f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"}


def _log_row(path: Path, step: int, elapsed: float, lr: float, losses: dict[str, float], egs: float) -> None:
    header = ["step", "seconds", "lr", *[f"loss_{n}" for n in losses], "egs_per_s"]
    row = [step, f"{elapsed:.2f}", f"{lr:.3g}", *[f"{v:.6f}" for v in losses.values()], f"{egs:.2f}"]
    _append_row(path, header, row)


def _append_row(path: Path, header: list, row: list) -> None:
    """One row onto a training log (its header first, when new)."""
    new = not path.exists()
    try:
        with open(path, "a", newline="") as f:
            out = csv.writer(f)
            if new:
                out.writerow(header)
            out.writerow(row)
    except OSError as error:
        raise DualfaceError(f"cannot write {path}: {error.strerror or error}") from None


def _append_figures(path: Path, header: list, row: list) -> None:
    """`_append_row` for the held-out figures, whose columns a resumed run can change (its held-out faces
    changed): the log is then rewritten under both headers, so no row lands under another's."""
    try:
        with open(path, newline="") as f:
            logged = next(csv.reader(f), None)
    except FileNotFoundError:
        logged = None
    except OSError as error:
        raise DualfaceError(f"cannot read {path}: {error.strerror or error}") from None
    named = dict(zip(header, row, strict=True))
    if logged is None or set(header) <= set(logged):  # new, the same, or the merged header of an earlier change
        _append_row(path, header, [named.get(c, "") for c in logged] if logged else row)
        return
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as error:
        raise DualfaceError(f"cannot read {path}: {error.strerror or error}") from None
    columns = logged + [c for c in header if c not in logged]
    table = [dict(zip(logged, r, strict=False)) for r in rows[1:]] + [named]
    text = io.StringIO(newline="")
    out = csv.writer(text)
    out.writerow(columns)
    out.writerows([r.get(c, "") for c in columns] for r in table)
    try:
        atomic_write_bytes(path, text.getvalue().encode())
    except OSError as error:
        raise DualfaceError(f"cannot write {path}: {error.strerror or error}") from None


def _trim_log(path: Path, step: int) -> None:
    """A training log without its rows past `step`, nor a last row a kill cut short."""
    try:
        with open(path, newline="") as f:  # the csv module's own line ends, kept as written
            lines = f.read().splitlines(keepends=True)
    except FileNotFoundError:
        return
    except OSError as error:
        raise DualfaceError(f"cannot read {path}: {error.strerror or error}") from None
    kept = lines[:1]
    for line in lines[1:]:
        first = next(csv.reader([line]), [""])[0]
        if line.endswith("\n") and not (first.isdigit() and int(first) > step):
            kept.append(line)
    if kept != lines:
        atomic_write_bytes(path, "".join(kept).encode())


def _tensorboard(cfg: TrainConfig, ctx: Distributed, step: int):
    if not (cfg.tensorboard and ctx.main):
        return None
    from torch.utils.tensorboard import SummaryWriter

    # Events a killed run wrote past the step this one starts from are hidden: the steps are redone.
    return SummaryWriter(str(cfg.model_dir / "tensorboard"), purge_step=step + 1)


def _preview_faces(
    sets: list[FaceSet], model_cfg: ModelConfig, device: torch.device, cfg: TrainConfig
) -> dict[str, torch.Tensor]:
    """Four fixed, unaugmented faces per identity, the same at every preview (a timelapse needs that)."""
    faces = {}
    for s in sets:
        picks = np.linspace(0, len(s) - 1, 4).round().astype(int)
        crops, _ = center_crop(s.faces[picks], s.landmarks[picks], model_cfg.size)
        faces[s.name] = torch.from_numpy(crops).to(device).permute(0, 3, 1, 2).float() / 255
    return faces


def _write_preview(model: Autoencoder, faces: dict[str, torch.Tensor], cfg: TrainConfig, step: int, writer) -> None:
    model.eval()
    grid = preview_grid(model, faces)
    model.train()
    save_png(cfg.model_dir / "preview.png", grid, "training preview")
    if cfg.timelapse:
        (cfg.model_dir / "timelapse").mkdir(exist_ok=True)
        save_png(cfg.model_dir / "timelapse" / f"step-{step:08d}.png", grid, "training preview")
    if writer is not None:
        writer.add_image("preview", grid, step, dataformats="HWC")
