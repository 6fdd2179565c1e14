from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dualface import losses
from dualface.align import MEAN_FACE
from dualface.errors import DualfaceError
from dualface.losses import LOSSES, ssim_map
from dualface.masks import MASKS, extended_mask, hull_mask, region_weights
from dualface.model import (
    DEEP,
    SMALL_MAP,
    Autoencoder,
    Conv2d,
    ModelConfig,
    parameter_count,
    to_channels_last,
    train_flops_per_example,
)


def test_original_is_the_classic_model():
    model = Autoencoder(ModelConfig.from_preset("original"), ["a", "b"])
    assert parameter_count(model) == 82_062_470  # faceswap "Original": 82.06 M with two decoders
    assert train_flops_per_example(model.config) == pytest.approx(11.4e9, rel=0.01)


@pytest.mark.parametrize(
    "shape, kernel, stride",
    [((3, 192, 8, 8), 5, 2), ((3, 512, 4, 4), 3, 1), ((3, 32, 16, 16), 3, 2), ((3, 64, 8, 8), 3, 2)],
)
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_small_map_convolution_as_a_matmul_gives_the_convolutions_sums(shape, kernel, stride, layout):
    """The matmul path (small deep maps: SMALL_MAP, DEEP) and oneDNN's convolution agree, forward and in
    every gradient, in fp32 and channels-last, with the weight in either layout (training moves it to
    channels-last on AVX-512, where the path takes it as a view); other maps take oneDNN's path itself."""
    torch.manual_seed(0)
    ours = Conv2d(shape[1], 48, kernel, stride=stride, padding=kernel // 2, small_map=True).to(memory_format=layout)
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    arriving = []  # the weight's gradient as backward hands it over, before autograd lays it out as the weight
    ours.weight.register_hook(lambda grad: arriving.append(grad.stride()))
    out = ours(x)
    matmul = out.shape[2] * out.shape[3] <= SMALL_MAP and shape[1] * kernel * kernel >= DEEP
    assert ours.as_matmul == (shape[1] * kernel * kernel >= DEEP)
    assert out.shape == F.conv2d(x, ours.weight, ours.bias, stride, kernel // 2).shape
    (out * torch.linspace(-1, 1, out.numel()).view(out.shape)).sum().backward()
    grads = [t.grad.clone() for t in (x, ours.weight, ours.bias)]
    for t in (x, ours.weight, ours.bias):
        t.grad = None
    reference = F.conv2d(x, ours.weight, ours.bias, stride, kernel // 2)
    (reference * torch.linspace(-1, 1, out.numel()).view(out.shape)).sum().backward()
    assert torch.allclose(out, reference, atol=1e-5)
    for ours_grad, t in zip(grads, (x, ours.weight, ours.bias), strict=True):
        assert torch.allclose(ours_grad, t.grad, atol=1e-4)
    if matmul:  # the path hands the gradient over in the weight's own layout: no copy to lay it out
        assert arriving[0] == ours.weight.stride()
    assert matmul == (shape[1] >= 192)  # the parametrisation covers both paths
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert (ours(x).float() - reference).abs().max() < 0.05 * reference.abs().max()


def test_lite_costs_at_most_an_eighth_of_original():
    assert (
        train_flops_per_example(ModelConfig.from_preset("lite"))
        <= train_flops_per_example(ModelConfig.from_preset("original")) / 8
    )


def test_lite128_draws_four_times_the_pixels_for_under_twice_the_flops():
    lite, lite128 = (train_flops_per_example(ModelConfig.from_preset(p)) for p in ("lite", "lite128"))
    assert ModelConfig.from_preset("lite128").size == 128 and lite128 < 2 * lite


def test_every_preset_has_a_learning_rate_and_a_batch_that_training_takes():
    from dualface.config import TrainConfig
    from dualface.presets import MODEL_PRESETS, preset_batch, preset_lr

    assert all(0 < preset_lr(name) < 1e-2 for name in MODEL_PRESETS)
    assert all(isinstance(preset_batch(name), int) and preset_batch(name) >= 1 for name in MODEL_PRESETS)
    shape = ModelConfig.from_preset("lite128").to_dict()
    assert "lr" not in shape and "batch" not in shape
    faces = [Path("a"), Path("b")]
    assert TrainConfig(faces=faces, model_dir=Path("m"), preset="lite128").batch_size == 4
    assert TrainConfig(faces=faces, model_dir=Path("m"), preset="lite").batch_size == 16
    assert TrainConfig(faces=faces, model_dir=Path("m"), preset="lite128", batch_size=8).batch_size == 8


@pytest.mark.parametrize("preset", ["lite", "lite128", "original", "hd"])
def test_shapes_and_swaps(preset):
    cfg = ModelConfig.from_preset(preset)
    model = Autoencoder(cfg, ["alice", "bob", "carol"])
    faces = torch.rand(2, 3, cfg.size, cfg.size)
    out = model({"alice": faces, "bob": faces[:1]})
    assert out["alice"].rgb.shape == (2, 3, cfg.size, cfg.size) and out["bob"].rgb.shape[0] == 1
    assert (out["alice"].mask is not None) == cfg.learn_mask
    assert out["alice"].rgb.min() >= 0 and out["alice"].rgb.max() <= 1
    swap = model({"carol": faces})["carol"].rgb  # alice's faces drawn by carol's decoder
    assert not torch.allclose(swap, out["alice"].rgb)


def test_model_config_validation():
    with pytest.raises(DualfaceError):
        ModelConfig.from_preset("huge")
    with pytest.raises(DualfaceError):
        ModelConfig.from_preset("lite", size=96)
    with pytest.raises(DualfaceError):
        Autoencoder(ModelConfig.from_preset("lite"), ["solo"])


@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_of_identical_images_is_zero(name):
    x = torch.rand(2, 3, 32, 32)
    weight = torch.rand(2, 1, 32, 32)
    assert LOSSES[name](x, x, weight).item() == pytest.approx(0, abs=1e-5)
    assert LOSSES[name](x, 1 - x, weight).item() > 0.01


def test_gradient_difference_charges_blur_that_pixel_losses_forgive():
    from dualface.losses import gradient_difference

    x = torch.rand(1, 3, 32, 32)
    blurred = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1)
    weight = torch.ones(1, 1, 32, 32)
    assert gradient_difference(x, x, weight).item() == pytest.approx(0, abs=1e-6)
    # a blur of noise keeps the mean (pixel error ~0.2) but loses most of the edges
    assert gradient_difference(blurred, x, weight).item() > LOSSES["l1"](blurred, x, weight).item()


def test_spectrum_l1_charges_a_blur_that_l1_rates_like_a_brightness_change():
    """Blur and a brightness shift of equal pixel error: the amplitude spectrum loses its high-frequency
    bins to the blur only; a face with no detail at all (zeros) gets a finite gradient, not NaN."""
    from dualface.losses import spectrum_l1

    torch.manual_seed(0)
    x = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 64, 64), 3, stride=1, padding=1)  # some grain
    blurred = torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)
    weight = torch.ones(2, 1, 64, 64)
    brighter = x + LOSSES["l1"](blurred, x, weight).item()  # L1 rates the two alike by construction
    assert spectrum_l1(blurred, x, weight).item() > 5 * spectrum_l1(brighter, x, weight).item()
    wide = torch.rand(1, 3, 24, 40)  # not square, with a face-like weight map: eyes up, background down
    face = torch.full((1, 1, 24, 40), 0.1)
    face[..., 4:20, 8:32] = 1
    face[..., 6:10, 12:28] = 3
    assert spectrum_l1(wide, wide, face).item() == pytest.approx(0, abs=1e-6)
    assert spectrum_l1(wide.flip(-1), wide, face).item() > 0.01
    empty = torch.zeros(1, 3, 16, 16, requires_grad=True)
    spectrum_l1(empty, torch.rand(1, 3, 16, 16), torch.ones(1, 1, 16, 16)).backward()
    assert torch.isfinite(empty.grad).all()


def test_multiscale_dssim_charges_a_wrong_shape_that_one_window_misses():
    """A face part moved by more than the 11-pixel window reaches is only structure at the coarser sizes:
    the multi-scale loss charges it more, relative to a small local change, than full-size DSSIM does."""
    from dualface.losses import dssim, multiscale_dssim

    torch.manual_seed(0)
    base = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 64, 64), 5, stride=1, padding=2)
    x = base.clone()
    x[..., 24:40, 16:32] = 0.9  # a bright patch ("an eye")
    moved = base.clone()
    moved[..., 24:40, 36:52] = 0.9  # the same patch 20 px to the side
    noisy = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)  # fine-grain difference, shape kept
    weight = torch.ones(1, 1, 64, 64)
    assert multiscale_dssim(x, x, weight).item() == pytest.approx(0, abs=1e-5)

    def shape_over_grain(loss) -> float:
        return loss(moved, x, weight).item() / loss(noisy, x, weight).item()

    assert shape_over_grain(multiscale_dssim) > 1.2 * shape_over_grain(dssim)


def test_zero_weight_pixels_do_not_count():
    x, y = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    weight = torch.zeros(1, 1, 32, 32)
    weight[..., :16, :] = 1
    y_same_top = y.clone()
    y_same_top[..., :16, :] = x[..., :16, :]
    assert LOSSES["l1"](x, y_same_top, weight).item() == pytest.approx(0, abs=1e-6)


def test_ssim_is_one_for_identical_and_lower_for_noise():
    x = torch.rand(1, 3, 32, 32)
    assert ssim_map(x, x).mean().item() == pytest.approx(1, abs=1e-4)
    assert ssim_map(x, (x + 0.3 * torch.randn_like(x)).clamp(0, 1)).mean() < 0.8


def test_banded_blur_gives_the_dense_products_value_and_gradient():
    """SSIM's blur, taken a band of blocks at a time (several here, and a ragged last one), against the
    plain dense products Mh.T @ t @ Mw, forward and backward, on a channels-last batch."""
    t = torch.rand(2, 3, 70, 100, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    grad_out = torch.rand(2, 3, 70, 100, dtype=torch.float64)
    results = []
    for blur in (
        losses._blur,
        lambda x: losses._blur_matrix(70, x.device, x.dtype).T @ x @ losses._blur_matrix(100, x.device, x.dtype),
    ):
        x = t.clone().requires_grad_(True)
        out = blur(x)
        (out * grad_out).sum().backward()
        results.append((out.detach(), x.grad))
    assert torch.allclose(results[0][0], results[1][0], atol=1e-12)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 64, 64), (1, 3, 40, 72)])
def test_ssim_matches_the_textbook_window(shape):
    # Wang et al.: an 11x11 Gaussian window (sigma 1.5), here as one 2D convolution over reflect padding.
    x, y = torch.rand(shape), torch.rand(shape)
    g = torch.exp(-((torch.arange(11.0) - 5) ** 2) / (2 * 1.5**2))
    window = (g[:, None] * g[None, :] / g.sum() ** 2).expand(3, 1, 11, 11)
    blur = lambda t: torch.nn.functional.conv2d(torch.nn.functional.pad(t, (5,) * 4, mode="reflect"), window, groups=3)  # noqa: E731
    mu_x, mu_y = blur(x), blur(y)
    var_x, var_y, cov = blur(x * x) - mu_x**2, blur(y * y) - mu_y**2, blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    textbook = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    assert torch.allclose(ssim_map(x, y), textbook, atol=1e-4)
    x, y = (t.contiguous(memory_format=torch.channels_last) for t in (x, y))  # training's layout on AVX-512
    assert torch.allclose(ssim_map(x, y), textbook, atol=1e-4)


def test_masks_from_landmarks():
    points = MEAN_FACE * 40 + 12
    hull, extended = hull_mask(points, 64), extended_mask(points, 64)
    assert set(MASKS) == {"hull", "extended"}
    assert hull.sum() > 500 and (extended >= hull).all() and extended.sum() > hull.sum() * 1.1
    top = int(np.argmax(extended.any(1)))
    assert top < int(np.argmax(hull.any(1)))  # the extended mask reaches higher: the forehead
    weights = region_weights(points, 64, eye_weight=2.0, mouth_weight=3.0)
    assert weights.max() == 3.0 and (weights == 2.0).any() and weights.min() == 1.0
    mouth_y, mouth_x = np.round(points[62]).astype(int)[::-1]
    assert weights[mouth_y, mouth_x] == 3.0


@pytest.mark.parametrize("shared", [1, 2])
def test_shared_trunk_keeps_a_decoder_per_identity(shared):
    cfg = ModelConfig.from_preset("lite", shared_upscales=shared)
    model = Autoencoder(cfg, ["a", "b"])
    assert model.trunk is not None and set(model.decoders) == {"a", "b"}
    classic = Autoencoder(ModelConfig.from_preset("lite", shared_upscales=0), ["a", "b"])
    assert parameter_count(model) < parameter_count(classic)
    faces = torch.rand(2, 3, 64, 64)
    out = model({"a": faces, "b": faces}, swap=2, cycle=True)
    assert out["a"].rgb.shape == (2, 3, 64, 64) and out["a"].cycled.shape == out["a"].code.shape
    assert not torch.allclose(out["a"].rgb, out["b"].rgb)  # same faces, different decoders
    with pytest.raises(DualfaceError):
        ModelConfig.from_preset("lite", shared_upscales=3)


def test_liae_swaps_into_its_identity_through_shared_layers_only():
    """DeepFaceLab's LIAE: drawn as the swap identity ("b"), any face goes through the encoder, the shared
    bottleneck and the one decoder, never through another identity's own bottleneck; drawn as "a", it does."""
    torch.manual_seed(0)
    model = Autoencoder(ModelConfig.from_preset("lite", liae="b"), ["a", "b"])
    assert model.config.shared_upscales == 0 and set(model.inters) == {"a"} and not hasattr(model, "decoders")
    faces = torch.rand(3, 3, 64, 64)
    for name, uses_own in (("b", False), ("a", True)):
        model.zero_grad()
        out = model({name: faces})[name]
        assert out.rgb.shape == (3, 3, 64, 64) and out.code.shape[1] == 2 * model.config.decoder_widths[0]
        out.rgb.mean().backward()
        assert all((p.grad is not None and p.grad.abs().sum() > 0) == uses_own for p in model.inters["a"].parameters())
        assert all(p.grad is not None for p in model.decoder.parameters())
    together = model({"a": faces, "b": faces[:1]})  # one pass over both identities' faces, split back
    assert torch.allclose(together["b"].rgb, model({"b": faces[:1]})["b"].rgb, atol=1e-6)
    assert not torch.allclose(together["a"].rgb[:1], together["b"].rgb)
    with pytest.raises(DualfaceError, match="--liae c"):
        Autoencoder(ModelConfig.from_preset("lite", liae="c"), ["a", "b"])
    with pytest.raises(DualfaceError, match="single decoder"):
        model({"a": faces, "b": faces}, swap=2, cycle=True)


def test_cycle_draws_a_few_codes_as_the_next_identity_and_encodes_them_again():
    """--cycle-weight's pass: the first N codes of each identity, drawn by the other's decoder and encoded
    again; its gradient teaches that other decoder (the one a swap runs through), never the face's own."""
    model = Autoencoder(ModelConfig.from_preset("lite"), ["a", "b"])
    faces = torch.rand(3, 3, 64, 64)
    out = model({"a": faces, "b": faces.flip(0)}, swap=2, cycle=True)
    assert out["a"].cycled.shape == out["a"].code[:2].shape and out["b"].cycled.shape[0] == 2
    assert out["a"].swap.shape == (2, 3, 64, 64)  # the swap the cycle encoded, which other losses judge
    out["a"].cycled.abs().sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoders["b"].parameters())
    assert all(p.grad is None or not p.grad.any() for p in model.decoders["a"].parameters())
    assert model({"a": faces, "b": faces})["a"].cycled is None  # off unless asked for


@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_face_and_mask_drawn_by_one_convolution_match_their_own_convolutions(monkeypatch, layout):
    """The decoders' merged heads (`MERGED_HEADS`) give the face and the mask, and every gradient, that
    `to_rgb` and `to_mask` give run one by one, in either layout training runs in."""
    import dualface.model

    torch.manual_seed(0)
    model = Autoencoder(ModelConfig.from_preset("lite", learn_mask=True), ["a", "b"])
    model = model.to(memory_format=layout)
    faces = torch.rand(2, 3, 64, 64).contiguous(memory_format=layout)
    results = []
    for merged in (False, True):
        monkeypatch.setattr(dualface.model, "MERGED_HEADS", merged)
        model.zero_grad()
        out = model({"a": faces})["a"]
        (out.rgb * torch.linspace(0, 1, 64)).mean().backward(retain_graph=True)
        out.mask.square().mean().backward()
        grads = [p.grad.clone() for p in model.decoders["a"].parameters()]
        results.append((out.rgb.detach(), out.mask.detach(), grads))
    (rgb, mask, grads), (merged_rgb, merged_mask, merged_grads) = results
    assert merged_rgb.shape == rgb.shape == (2, 3, 64, 64) and merged_mask.shape == mask.shape == (2, 1, 64, 64)
    assert merged_rgb.is_contiguous(memory_format=layout) and merged_mask.is_contiguous(memory_format=layout)
    assert torch.allclose(merged_rgb, rgb, atol=1e-6) and torch.allclose(merged_mask, mask, atol=1e-6)
    for ours, theirs in zip(merged_grads, grads, strict=True):
        assert torch.allclose(ours, theirs, atol=1e-6, rtol=1e-4)


def test_parameters_keep_the_order_checkpoints_store_adams_moments_in():
    """Checkpoints keep the optimizer's moments by parameter index: the encoder's convolutions come before
    its bottleneck, as in every model saved so far, or `--resume` hands moments to the wrong weights."""
    names = [n for n, _ in Autoencoder(ModelConfig.from_preset("lite128"), ["a", "b"]).named_parameters()]
    encoder = [n.split(".")[1] for n in names if n.startswith("encoder.")]
    assert encoder == ["convs"] * 10 + ["to_latent"] * 2 + ["from_latent"] * 2 + ["upscale"] * 2
    assert names.index("encoder.upscale.conv.bias") < names.index("trunk.upscales.0.conv.weight")


def test_channels_last_model_keeps_matmul_weights_contiguous_and_trains_like_the_plain_one():
    """`to_channels_last` leaves exactly the matmul path's weights contiguous (fused Adam copies any other
    layout every step), and a step of it gives the plain model's outputs, gradients and Adam update."""
    cfg = ModelConfig(size=32, encoder_widths=(8, 176, 16), latent=32, bottleneck_width=460, decoder_widths=(16, 8, 8))
    torch.manual_seed(0)
    plain = Autoencoder(cfg, ["a", "b"])
    fast = to_channels_last(Autoencoder(cfg, ["a", "b"]))
    fast.load_state_dict(plain.state_dict())
    matmul = {n for n, m in fast.named_modules() if isinstance(m, Conv2d) and m.as_matmul}
    assert matmul == {"encoder.convs.2", "encoder.upscale.conv"}  # 176 x 25 and 460 x 9 inputs: deep, 4x4
    for name, module in fast.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            layout = torch.contiguous_format if name in matmul else torch.channels_last
            assert module.weight.is_contiguous(memory_format=layout), name
    x = torch.rand(4, 3, 32, 32)
    updated = []
    for model, batch in ((plain, x), (fast, x.contiguous(memory_format=torch.channels_last))):
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, fused=True)
        out = model({"a": batch})["a"].rgb
        (out * torch.linspace(0, 1, out.numel()).view(out.shape)).sum().backward()
        optimizer.step()
        updated.append((out.detach(), {n: p.detach().clone() for n, p in model.named_parameters()}))
    assert torch.allclose(updated[0][0], updated[1][0], atol=1e-5)
    for name, weight in updated[0][1].items():
        assert torch.allclose(weight, updated[1][1][name], atol=1e-5), name
