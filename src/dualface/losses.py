"""Reconstruction losses, weighted per pixel (the face mask, with extra weight on eyes and mouth).

SSIM is Wang et al., "Image Quality Assessment: From Error Visibility to Structural Similarity", IEEE TIP
2004, with the usual 11x11 Gaussian window (sigma 1.5). The classic deepfakes recipe is (1 - SSIM) + L1.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# torch is imported inside the functions that call it, so the option layer lists this table (`--loss`'s
# choices) without loading torch; the others use only tensor methods.
Loss = Callable[["torch.Tensor", "torch.Tensor", "torch.Tensor"], "torch.Tensor"]


@functools.cache
def _blur_matrix(n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The 11-tap Gaussian (sigma 1.5) along one axis of n pixels, reflect-padded, as an (n, n) matrix: rows
    @ it blur them. A matmul runs at the BLAS rate where the depthwise 11x11 convolution does not: SSIM of
    a 128 px batch, forward and backward, took 89 ms that way and 46 ms this way, nearly half of a
    `lite128` step."""
    import torch
    import torch.nn.functional as F

    taps = torch.exp(-((torch.arange(11, dtype=torch.float64) - 5) ** 2) / (2 * 1.5**2))
    taps = taps / taps.sum()
    basis = F.pad(torch.eye(n, dtype=torch.float64)[None], (5, 5), mode="reflect")[0]  # row i: pixel i alone
    return F.conv1d(basis[:, None], taps.view(1, 1, 11))[:, 0].to(device, dtype)


# The products are taken a block of BAND output pixels at a time, over the BAND + 10 input pixels the
# window reaches: the dense (n, n) product did 12x the taps' arithmetic at 128 px (n / 11), this 4x.
BAND, REACH = 32, 5


def _spans(n: int) -> list[tuple[int, int, int, int]]:
    """Each block of n pixels' outputs [a, b) and the inputs [lo, hi) the window reaches from it."""
    return [(a, min(a + BAND, n), max(a - REACH, 0), min(a + BAND + REACH, n)) for a in range(0, n, BAND)]


def _band_rows(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """x (R, n) @ m (n, n), m zero beyond REACH of its diagonal, a block of output columns at a time."""
    import torch

    return torch.cat([x[:, lo:hi] @ m[lo:hi, a:b] for a, b, lo, hi in _spans(x.shape[-1])], 1)


def _band_columns(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """m (n, n).T @ each (n, W) image of x (..., n, W), a block of output rows at a time."""
    import torch

    mt = m.T
    return torch.cat([mt[a:b, lo:hi] @ x[..., lo:hi, :] for a, b, lo, hi in _spans(x.shape[-2])], -2)


def _blur_forward(t: torch.Tensor, transpose: bool = False) -> torch.Tensor:
    """Mh.T @ t @ Mw over (..., H, W), or with `transpose` its adjoint Mh @ t @ Mw.T."""
    (h, w), t = t.shape[-2:], t.contiguous()  # rows contiguous: a channels-last batch's are strided
    mh, mw = _blur_matrix(h, t.device, t.dtype), _blur_matrix(w, t.device, t.dtype)
    if transpose:
        mh, mw = mh.T.contiguous(), mw.T.contiguous()
    return _band_columns(_band_rows(t.reshape(-1, w), mw).view(t.shape), mh)


def _blur(t: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of (..., H, W): a banded product over every row of the batch, then over each
    image's columns; the backward pass is the same with the matrices transposed (the blur is linear), so
    autograd never sees the blocks (their slices would each add a gradient the size of the batch)."""
    return _banded_blur().apply(t)


@functools.cache
def _banded_blur() -> type:
    import torch

    class BandedBlur(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, t: torch.Tensor) -> torch.Tensor:
            return _blur_forward(t)

        @staticmethod
        def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
            return _blur_forward(grad, transpose=True)

    return BandedBlur


def ssim_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM of (B, C, H, W) images in [0, 1]; same shape out."""
    import torch

    c = x.shape[1]
    mu_x, mu_y, xx, yy, xy = _blur(torch.cat([x, y, x * x, y * y, x * y], 1)).split(c, 1)
    var_x = xx - mu_x**2
    var_y = yy - mu_y**2
    cov = xy - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))


def _weighted_mean(per_pixel: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean of (B, C, H, W) values under (B, 1, H, W) weights."""
    return (per_pixel * weight).sum() / (weight.sum() * per_pixel.shape[1]).clamp_min(1e-8)


def l1(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return _weighted_mean((pred - target).abs(), weight)


def mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return _weighted_mean((pred - target) ** 2, weight)


def dssim(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return _weighted_mean((1 - ssim_map(pred, target)) / 2, weight)


def ssim_l1(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return dssim(pred, target, weight) + l1(pred, target, weight)


def ssim_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return dssim(pred, target, weight) + mse(pred, target, weight)


SCALES = 3  # full, half and quarter size: an 11-pixel window at a quarter of 128 px spans a third of the face


def multiscale_dssim(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """DSSIM averaged over SCALES sizes of the images, each half the last (weights pooled alike).

    The 11-pixel window sees an eye's edge at full size and the eye's and mouth's shapes only at the
    coarser sizes: structure a single scale leaves to L1. The sum form of multi-scale SSIM, as DeepFaceLab
    sums DSSIM at two window sizes; Wang, Simoncelli and Bovik's product form (2003) weighs the full size
    at 4%, which is the detail the swap lacks.
    """
    import torch.nn.functional as F

    total = dssim(pred, target, weight)
    for _ in range(SCALES - 1):
        pred, target, weight = (F.avg_pool2d(t, 2) for t in (pred, target, weight))
        total = total + dssim(pred, target, weight)
    return total / SCALES


def ms_ssim_l1(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return multiscale_dssim(pred, target, weight) + l1(pred, target, weight)


def gradient_difference(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """L1 between the images' gradient magnitudes along x and y (the gradient difference loss of Mathieu,
    Couprie and LeCun, "Deep multi-scale video prediction beyond mean square error", ICLR 2016): pixel
    losses are minimised by the average of the plausible faces, a blur; this one charges for lost edges."""
    loss = pred.new_zeros(())
    for dim in (2, 3):
        grad_p, grad_t = pred.diff(dim=dim).abs(), target.diff(dim=dim).abs()
        w = weight.narrow(dim, 1, weight.shape[dim] - 1)
        loss = loss + _weighted_mean((grad_p - grad_t).abs(), w)
    return loss


def ssim_l1_gdl(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return ssim_l1(pred, target, weight) + gradient_difference(pred, target, weight)


def spectrum_l1(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """L1 between the amplitude spectra of the weighted images (each weight map scaled to peak at 1), the
    amplitude loss of Fuoli, Van Gool and Timofte, "Fourier space losses for efficient perceptual image
    super-resolution", ICCV 2021. A blur keeps the pixels' mean error small but empties the many
    high-frequency bins, and each bin is charged what it lost; the phase (where the detail sits) is left to
    the pixel losses, so the decoder is not pushed to the average of the plausible details, which is none.

    The weights multiply both images, not their difference (a spectrum has no pixels to weigh): their steps
    (the mask's edge, the eyes and mouth) are in both spectra alike. Each map is scaled to peak at 1 so that
    the loss's size does not follow `--mouth-weight`."""
    import torch

    w = weight / weight.amax((2, 3), keepdim=True).clamp_min(1e-8)

    def amplitude(x: torch.Tensor) -> torch.Tensor:
        f = torch.fft.rfft2((x * w).float(), norm="ortho")  # float: no bf16 FFT on CUDA or CPU
        return (f.real**2 + f.imag**2 + 1e-12).sqrt()  # the epsilon: a finite gradient at an empty bin

    return (amplitude(pred) - amplitude(target)).abs().mean()


def ssim_l1_spectrum(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return ssim_l1(pred, target, weight) + spectrum_l1(pred, target, weight)


LOSSES: dict[str, Loss] = {
    "ssim_l1": ssim_l1,
    "ssim_l1_gdl": ssim_l1_gdl,
    "ssim_l1_spectrum": ssim_l1_spectrum,
    "ms_ssim_l1": ms_ssim_l1,
    "ssim_mse": ssim_mse,
    "l1": l1,
    "mse": mse,
    "ssim": dssim,
}
