"""Checkpoints: the whole training state in one safetensors file, written atomically and verified on load.

One bundle holds the model weights, Adam's state, the RNG state, and (as metadata) the step, the model
and training configs and the identity names, so `convert` needs only the model folder and `--resume`
continues exactly. A SHA-256 over every tensor and the metadata is stored in the file and checked on load,
so a damaged file is refused with a clear error instead of producing a broken model.
"""

import hashlib
import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from dualface.errors import CorruptCheckpointError, DualfaceError
from dualface.files import atomic_write_bytes, checkpoints_in, latest_checkpoint

FORMAT = "dualface.checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None
    rng: torch.Tensor | None
    meta: dict[str, Any]  # "model_config", "train", "identities", plus whatever the trainer adds
    average: dict[str, torch.Tensor] | None = None  # the weights' moving average: what inference uses


def digest(tensors: dict[str, torch.Tensor], meta: dict[str, str] | None = None) -> str:
    """sha256 of named tensors' bytes (and of `meta`): a checkpoint's seal, and what torchrun replicas
    compare to prove they hold the same weights."""
    h = hashlib.sha256()
    for key in sorted(tensors):
        h.update(key.encode())
        h.update(tensors[key].detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    if meta is not None:
        h.update(json.dumps(meta, sort_keys=True).encode())
    return h.hexdigest()


def save_checkpoint(
    path: Path,
    model: torch.nn.Module | dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer | None,
    step: int,
    meta: dict[str, Any],
    average: torch.nn.Module | None = None,
) -> None:
    """Write the bundle to `path` atomically (temp file, fsync, rename): a crash or a full disk never
    leaves a half-written checkpoint under a checkpoint's name. `average` is the moving average of the
    weights, kept beside them."""
    weights = model if isinstance(model, dict) else model.state_dict()
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in weights.items()}
    if average is not None:
        tensors |= {f"average.{k}": v.detach().cpu().contiguous() for k, v in average.state_dict().items()}
    groups = None
    if optimizer is not None:
        state = optimizer.state_dict()
        for index, values in state["state"].items():
            for name, value in values.items():
                tensors[f"optim.{index}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
        groups = state["param_groups"]
    tensors["rng.torch"] = torch.get_rng_state()
    text = {
        "format": FORMAT,
        "version": str(VERSION),
        "step": str(step),
        "param_groups": json.dumps(groups),
        **{k: json.dumps(v) for k, v in meta.items()},
    }
    text["sha256"] = digest(tensors, text)
    try:
        atomic_write_bytes(path, _sorted_metadata(save_safetensors(tensors, metadata=text)))
    except OSError as error:
        raise DualfaceError(f"cannot save checkpoint {path}: {error.strerror or error}") from None


def _sorted_metadata(raw: bytes) -> bytes:
    """The file with its `__metadata__` keys in sorted order. safetensors writes them from a hash map, in
    an order that changes from run to run, so the same training state would give files with different
    sha256; the tensors' offsets don't depend on the header, so it can be rewritten in place."""
    length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + length])
    header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # safetensors keeps the data 8-byte aligned
    return len(text).to_bytes(8, "little") + text + raw[8 + length :]


def load_optimizer(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load saved optimizer state, its moments laid out as their parameters are. Checkpoints hold plain
    contiguous tensors; with channels-last parameters, fused Adam stepping on contiguous moments drifted from
    an uninterrupted run."""
    optimizer.load_state_dict(state)
    for param, moments in optimizer.state.items():
        for key, value in moments.items():
            if torch.is_tensor(value) and value.shape == param.shape:
                moments[key] = torch.empty_like(param).copy_(value)


def load_checkpoint(path: Path, model: bool = True) -> Checkpoint:
    """A checkpoint, its seal checked; with `model`, one that holds a model (not a critic's or a judge's
    own weights) whose settings this version knows."""
    try:
        raw = Path(path).read_bytes()
        tensors = load_safetensors(raw)
        text = _metadata(raw)
    except FileNotFoundError:
        raise CorruptCheckpointError(f"{path}: no such checkpoint") from None
    except IsADirectoryError:
        raise DualfaceError(f"{path}: a folder, not a checkpoint file (e.g. its best.safetensors)") from None
    except OSError as error:
        raise DualfaceError(f"{path}: cannot read the checkpoint ({error.strerror or error})") from None
    except (SafetensorError, ValueError, json.JSONDecodeError) as error:
        raise CorruptCheckpointError(f"{path}: checkpoint is corrupt ({error})") from None
    if text.get("format") != FORMAT:
        raise CorruptCheckpointError(f"{path}: not a dualface checkpoint")
    stored = text.pop("sha256", None)
    if stored != digest(tensors, text):
        raise CorruptCheckpointError(f"{path}: checkpoint is corrupt (checksum mismatch)")
    weights = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    average = {k[len("average.") :]: v for k, v in tensors.items() if k.startswith("average.")} or None
    groups = json.loads(text.pop("param_groups"))
    optimizer = None
    if groups is not None:
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value
        optimizer = {"state": state, "param_groups": groups}
    step = int(text.pop("step"))
    meta = {k: json.loads(v) for k, v in text.items() if k not in ("format", "version")}
    if model:
        _check_model(path, meta)
    return Checkpoint(step, weights, optimizer, tensors.get("rng.torch"), meta, average)


def _check_model(path: Path, meta: dict[str, Any]) -> None:
    from dualface.model import ModelConfig

    if "model_config" not in meta or "identities" not in meta:
        held = f"a {meta['role'].replace('-', ' ')}'s weights" if "role" in meta else "no model"
        raise DualfaceError(f"{path}: holds {held}, not a dualface model")
    unknown = set(meta["model_config"]) - {f.name for f in fields(ModelConfig)}
    if unknown:
        raise DualfaceError(f"{path}: written by a newer dualface (model settings {', '.join(sorted(unknown))})")


def read_meta(path: Path) -> dict[str, Any]:
    """A checkpoint's metadata (step, configs, identities) from its header alone, unverified: a quick look
    that reads no tensors."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            length = int.from_bytes(head, "little")
            # A damaged header's length can be any 64-bit number: read none past the file's end.
            if len(head) < 8:
                raise ValueError(f"{len(head)} bytes, shorter than a header's length")
            if length > os.fstat(f.fileno()).st_size - 8:
                raise ValueError(f"its header claims {length} bytes, past the file's end")
            raw = head + f.read(length)
        text = _metadata(raw)
        return {k: json.loads(v) for k, v in text.items() if k not in ("format", "version", "sha256", "param_groups")}
    except FileNotFoundError:
        raise DualfaceError(f"{path}: no such checkpoint") from None
    except (ValueError, json.JSONDecodeError) as error:
        raise DualfaceError(f"{path}: checkpoint is corrupt ({error})") from None


def _metadata(raw: bytes) -> dict[str, str]:
    """The safetensors header's `__metadata__` (the library's loader returns only tensors)."""
    length = int.from_bytes(raw[:8], "little")
    return dict(json.loads(raw[8 : 8 + length]).get("__metadata__", {}))


def prune_checkpoints(folder: Path, keep: int) -> None:
    for path in checkpoints_in(folder)[:-keep]:
        path.unlink(missing_ok=True)


def best_or_latest(folder: Path) -> Path:
    """The checkpoint `convert` and `evaluate` use: the best one, else the latest."""
    folder = Path(folder)
    best = folder / "best.safetensors"
    if best.exists():
        return best
    latest = latest_checkpoint(folder)
    if latest is None:
        raise DualfaceError(f"{folder}: holds no checkpoint; train a model into it first")
    return latest


def export_weights(path: Path, out: Path, about: dict[str, Any]) -> None:
    """A shippable copy of a checkpoint: its weights (the average, where it has one) in fp16, no optimizer
    state, its metadata plus `about` (how it was made), for `train --init`."""
    checkpoint = load_checkpoint(path)
    weights = {k: v.half() if v.is_floating_point() else v for k, v in (checkpoint.average or checkpoint.model).items()}
    meta = {k: v for k, v in checkpoint.meta.items() if k not in ("losses", "lr_scale", "best_loss", "eval")}
    save_checkpoint(out, weights, None, checkpoint.step, {**meta, **about})


def resolve_checkpoint(folder: Path, choice: str = "best") -> Path:
    """The checkpoint file a command uses: "best" (best.safetensors, else the latest), "last" (the latest
    step checkpoint, else best), or a file (a path, or a name inside the model folder)."""
    folder = Path(folder)
    if choice == "best":
        if not folder.is_dir():
            raise DualfaceError(f"{folder}: no such model folder")
        return best_or_latest(folder)
    if choice == "last":
        if not folder.is_dir():
            raise DualfaceError(f"{folder}: no such model folder")
        latest = latest_checkpoint(folder)
        return latest if latest is not None else best_or_latest(folder)
    for path in (Path(choice), folder / choice):
        if path.is_file():
            return path
    raise DualfaceError(f"--checkpoint {choice}: no such file (nor in {folder}); use best, last or a file")


def load_model(folder: Path, device: str = "cpu"):
    """The trained autoencoder in a model folder, in eval mode."""
    return model_from(load_checkpoint(best_or_latest(folder)), device)


def model_from(checkpoint: Checkpoint, device: str = "cpu"):
    """The autoencoder a loaded checkpoint holds, in eval mode: its averaged weights where it has them
    (steadier than the last step's), else the weights themselves."""
    from dualface.model import Autoencoder, ModelConfig

    model = Autoencoder(ModelConfig(**checkpoint.meta["model_config"]), checkpoint.meta["identities"])
    model.load_state_dict(checkpoint.average or checkpoint.model)
    return model.to(device).eval()
