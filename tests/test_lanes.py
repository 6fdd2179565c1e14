from pathlib import Path

import pytest
import torch

from dualface.config import TrainConfig
from dualface.lanes import Lanes, split_batch
from dualface.model import Autoencoder, ModelConfig, to_channels_last
from dualface.train import compute_losses

CFG = ModelConfig(
    size=32, encoder_widths=(8, 16, 16), latent=16, bottleneck_width=16, decoder_widths=(16, 8, 8), learn_mask=True
)


def _faces(batch: int) -> dict[str, dict[str, torch.Tensor]]:
    torch.manual_seed(1)

    def image() -> torch.Tensor:
        return torch.rand(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)

    # Every face weighs the same in the loss's weighted mean, so the parts' means, weighted by their size,
    # are the whole batch's exactly (with masks, each part is its own faces' weighted mean, as under DDP).
    ones = torch.ones(batch, 1, 32, 32)
    return {n: {"inputs": image(), "targets": image(), "masks": ones, "weights": ones} for n in "ab"}


@pytest.mark.parametrize("batch", [4, 5])  # 5: parts of 2 and 3 faces, weighted by their share
def test_lanes_give_the_whole_batchs_loss_and_gradients_with_one_thread_each(batch: int):
    torch.manual_seed(0)
    model = to_channels_last(Autoencoder(CFG, ["a", "b"]))
    params = list(model.parameters())
    cfg = TrainConfig(faces=[Path("a"), Path("b")], model_dir=Path("unused"))
    faces = _faces(batch)
    cpu = torch.device("cpu")

    losses, _ = compute_losses(model, faces, cfg, torch.float32, cpu)
    whole = sum(losses.values())
    whole.backward()
    expected = [p.grad.clone() for p in params]
    model.zero_grad(set_to_none=True)

    seen_threads = []

    def part_loss(part):
        seen_threads.append(torch.get_num_threads())
        part_losses, _ = compute_losses(model, part, cfg, torch.float32, cpu)
        return sum(part_losses.values()), {"faces": len(part["a"]["inputs"])}

    main_threads = torch.get_num_threads()
    lanes = Lanes(2)
    try:
        total, parts = lanes.gradients(faces, part_loss, params)
    finally:
        lanes.close()
    assert seen_threads == [1, 1] and torch.get_num_threads() == main_threads  # the lanes' own count only
    assert [share for share, _ in parts] == [e["faces"] / batch for _, e in parts]
    assert sum(e["faces"] for _, e in parts) == batch
    torch.testing.assert_close(total, whole.detach(), rtol=1e-5, atol=1e-7)
    for p, grad in zip(params, expected, strict=True):
        torch.testing.assert_close(p.grad, grad, rtol=1e-4, atol=1e-5 * grad.abs().max().item())
        assert p.grad.stride() == p.stride()  # fused Adam copies gradients laid out unlike their weights


def test_split_batch_cuts_every_identity_alike_and_never_into_empty_parts():
    faces = _faces(3)
    parts = split_batch(faces, 8)  # more lanes than faces: one face each
    assert [share for share, _ in parts] == [1 / 3] * 3
    for i, (_, part) in enumerate(parts):
        for name in "ab":
            for key, tensor in part[name].items():
                assert torch.equal(tensor, faces[name][key][i : i + 1])
