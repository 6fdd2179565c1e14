"""A training run's state on disk, apart from the loop: where it starts (`--resume`, `--init`), what it keeps
(checkpoints, best.safetensors, pruning), where it goes back to when the loss diverges, and the moving
average of the weights that previews, held-out figures and conversion use.
"""

import contextlib
import copy
import logging
import math
import os
from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed as dist

from dualface.checkpoint import (
    best_or_latest,
    checkpoints_in,
    latest_checkpoint,
    load_checkpoint,
    load_optimizer,
    prune_checkpoints,
    read_meta,
    save_checkpoint,
)
from dualface.config import TrainConfig
from dualface.distributed import Distributed
from dualface.errors import CorruptCheckpointError, DualfaceError
from dualface.files import atomic_write_bytes, checkpoint_path
from dualface.model import Autoencoder
from dualface.presets import preset_batch, preset_lr

log = logging.getLogger(__name__)


def init_file(init: Path) -> Path:
    """The checkpoint file `--init` names: the file itself, or a model folder's best (else latest)."""
    return (best_or_latest(init) if Path(init).is_dir() else Path(init)).resolve()


def init_point(cfg: TrainConfig):
    """The file a new model starts from (`--init`, `init_file`), for its record, and that checkpoint."""
    path = init_file(cfg.init)
    checkpoint = load_checkpoint(path)
    known = checkpoint.meta.get("identities", [])
    if len(known) != len(cfg.names):
        raise DualfaceError(f"--init {cfg.init} has {len(known)} identities ({', '.join(known)}), not {len(cfg.names)}")
    return path, checkpoint


def renamed(checkpoint, names: list[str]) -> dict:
    """The checkpoint's weights (its average, where it has one) with its identities' decoders (LIAE: their
    bottlenecks) renamed, in order, to this run's names."""
    rename = dict(zip(checkpoint.meta["identities"], names, strict=True))
    weights = {}
    for key, value in (checkpoint.average or checkpoint.model).items():
        parts = key.split(".")
        if parts[0] in ("decoders", "inters"):
            parts[1] = rename[parts[1]]
        weights[".".join(parts)] = value.float()
    return weights


def settled(cfg: TrainConfig) -> TrainConfig:
    """The batch and learning rate to train at. A resumed run not given them again keeps the ones it was
    trained at (its newest readable checkpoint says), not the preset's: a preset's defaults change between
    versions (lite128's batch went from 16 to 4), and a run should not change pace unasked half-way."""
    if cfg.batch_size is not None and cfg.lr is not None:  # always so without --resume (`TrainConfig`)
        return cfg
    recorded = newest_meta(cfg.model_dir).get("train", {})
    # A worker's batch under --processes; the step's is that times the processes.
    batch = cfg.batch_size or recorded.get("batch_size", 0) * recorded.get("processes", 1) or preset_batch(cfg.preset)
    lr = cfg.lr or recorded.get("lr") or preset_lr(cfg.preset)
    if recorded:
        log.info("resuming at batch %d and learning rate %g, as given or as the run was trained", batch, lr)
    return replace(cfg, batch_size=batch, lr=lr)


def newest_meta(folder: Path) -> dict:
    """The metadata of a model folder's newest checkpoint that reads ({} where none does): what a resumed run
    was trained as, looked up before it loads (a damaged newest one is set aside by the run itself)."""
    for path in reversed(checkpoints_in(folder)):
        with contextlib.suppress(DualfaceError):
            return read_meta(path)
    return {}


def resume_point(cfg: TrainConfig):
    if not cfg.resume:
        if latest_checkpoint(cfg.model_dir):
            raise DualfaceError(
                f"{cfg.model_dir} already holds a model: pass --resume to continue it, or choose another folder"
            )
        return None
    checkpoint = latest_good(cfg.model_dir)
    saved = checkpoint.meta["model_config"]["preset"]
    if saved != cfg.preset:
        raise DualfaceError(f"--resume: {cfg.model_dir} holds a '{saved}' model, not '{cfg.preset}'")
    return checkpoint


def latest_good(folder: Path):
    """The newest checkpoint that loads. A damaged newer one (a disk error, a copy cut short) is renamed
    `*.corrupt`, out of the way of pruning and later resumes, and the run goes on from the one before."""
    found = list(reversed(checkpoints_in(folder)))
    if not found:
        raise DualfaceError(f"--resume: {folder} holds no checkpoint")
    for path in found:
        try:
            checkpoint = load_checkpoint(path)
        except CorruptCheckpointError as error:  # one of the wrong kind or a newer version stops the run
            log.warning("%s; setting it aside as %s.corrupt", error, path.name)
            with contextlib.suppress(FileNotFoundError):  # under torchrun, another process got there first
                path.replace(path.with_name(path.name + ".corrupt"))
            continue
        if path != found[0]:
            log.warning("resuming from %s (step %d), the newest good checkpoint", path.name, checkpoint.step)
        return checkpoint
    raise DualfaceError(f"--resume: every checkpoint in {folder} is corrupt ({', '.join(p.name for p in found)})")


def save(
    model: Autoencoder,
    optimizer: torch.optim.Optimizer,
    step: int,
    cfg: TrainConfig,
    ctx: Distributed,
    meta_base: dict,
    lr_scale: float,
    ema: dict[str, float],
    best: float,
    average: Autoencoder | None = None,
) -> float:
    if ctx.main:
        score = max(ema.values()) if ema else math.inf
        meta = {**meta_base, "lr_scale": lr_scale, "losses": ema, "best_loss": min(best, score)}
        path = checkpoint_path(cfg.model_dir, step)
        save_checkpoint(path, model, optimizer, step, meta, average)
        if score < best and cfg.best_by == "loss":
            best = score
            keep_as_best(path)
        prune_checkpoints(cfg.model_dir, cfg.keep)
    if ctx.world > 1:
        dist.barrier()
    return best


def keep_as_best(path: Path) -> None:
    """Make the checkpoint just saved best.safetensors too: a hard link (checkpoints are never changed in
    place, only replaced), so a disk with room for one checkpoint need not hold a second copy; a copy,
    atomically, where the file system has no hard links."""
    best = path.parent / "best.safetensors"
    tmp = path.parent / f".best.{os.getpid()}.tmp"
    try:
        tmp.unlink(missing_ok=True)
        os.link(path, tmp)
        tmp.replace(best)
        return
    except OSError:
        tmp.unlink(missing_ok=True)
    try:
        atomic_write_bytes(best, path.read_bytes())
    except OSError as error:
        raise DualfaceError(f"cannot save {best}: {error.strerror or error} ({path} was saved)") from None


def start_average(model: Autoencoder, resume_from, cfg: TrainConfig) -> Autoencoder | None:
    """The moving average of the weights: the resumed run's, else a copy of where training starts."""
    if not cfg.average:
        return None
    average = copy.deepcopy(model).requires_grad_(False)
    if resume_from is not None and resume_from.average is not None:
        average.load_state_dict(resume_from.average)
    return average


@torch.no_grad()
def update_average(average: Autoencoder, model: Autoencoder, decay: float, step: int) -> None:
    """average <- decay * average + (1 - decay) * weights, with a shorter memory over the first steps (so
    the average does not hold on to the random initialisation)."""
    rate = 1 - min(decay, (1 + step) / (10 + step))
    torch._foreach_lerp_(list(average.parameters()), list(model.parameters()), rate)


def roll_back(
    model: Autoencoder,
    optimizer: torch.optim.Optimizer,
    cfg: TrainConfig,
    snapshot: tuple[int, dict[str, torch.Tensor]],
    ctx: Distributed,
) -> int:
    """Restore the last good state: the latest checkpoint, or the weights this run started from."""
    path = latest_checkpoint(cfg.model_dir)
    if path is not None:
        checkpoint = load_checkpoint(path)
        model.load_state_dict(checkpoint.model)
        load_optimizer(optimizer, checkpoint.optimizer)
        return checkpoint.step
    step, weights = snapshot
    model.load_state_dict(weights)
    optimizer.state.clear()
    return step
