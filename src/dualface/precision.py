"""The device a model runs on, and the number format and memory layout it runs fastest in there, for
training and conversion alike.

bf16 is worth it only where the hardware has it: on an AVX2-only CPU it is emulated and a matmul runs ~75x
slower. oneDNN's channels-last kernels are its AVX-512 ones: on an AVX-512 EPYC, `lite128` trained 1.2x
(bf16) to 1.3x (fp32) faster in that layout and drew faces 1.2-1.8x faster; on AVX2 it was slower.
"""

from typing import Literal

import torch

from dualface.errors import DualfaceError

Precision = Literal["auto", "fp32", "bf16"]


def pick_device(name: str) -> torch.device:
    """`--device`: `auto` is the GPU where CUDA has one, else the CPU; any other name must be a device here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DualfaceError(f"--device {name}: not a device (auto, cpu, cuda or cuda:N)") from None
    if device.type not in ("cpu", "cuda"):
        raise DualfaceError(f"--device {name}: dualface runs on cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DualfaceError(f"--device {name}: this torch build or machine has no CUDA GPU")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise DualfaceError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return device


def hardware_bf16(device: torch.device) -> bool:
    """Whether bf16 runs natively on `device`."""
    if device.type == "cuda":
        # Not `is_bf16_supported()`: it counts emulation, so it says yes on a T4 or V100 (compute
        # capability 7), where bf16 runs slower than fp32; native bf16 came with Ampere (8).
        return torch.cuda.get_device_capability(device)[0] >= 8
    return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def pick_dtype(precision: Precision, device: torch.device) -> torch.dtype:
    if precision == "bf16" or (precision == "auto" and hardware_bf16(device)):
        return torch.bfloat16
    return torch.float32


def wants_channels_last(device: torch.device) -> bool:
    return device.type == "cuda" or torch.backends.cpu.get_cpu_capability().startswith("AVX512")
