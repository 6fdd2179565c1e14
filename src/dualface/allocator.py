"""glibc's allocator, told to keep the memory a step frees for the next step.

A training step frees and allocates the same large tensors every time: activations, bf16 copies of the
weights, gradients. glibc gives every block over its mmap threshold (128 KB, rising to at most 32 MB) back
to the kernel on free, and trims the top of its heap, so the next step faults the same memory in again,
page by page: about 100,000 page faults a step (400 MB) for `original`, 18,000 for `lite128`. Kept
instead, `original` steps ran 1.49x faster in bf16 (1.18x fp32) and `lite128` 1.07x on a 2-core
AVX-512-bf16 EPYC, for 4% more peak memory (bench/results/layers_*.json, "freed memory kept").
"""

import ctypes
import os

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt's parameter numbers (malloc.h)
USER_SETTINGS = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_ARENA_MAX")


def keep_freed_memory() -> bool:
    """Serve large blocks from glibc's heap and never trim it; True where that took effect.

    A no-op where the C library is not glibc, where another allocator is preloaded (jemalloc, tcmalloc
    keep freed memory themselves), or where the user tuned glibc with its MALLOC_* variables.
    """
    tunables = "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", "")
    if any(os.environ.get(name) for name in USER_SETTINGS) or tunables or "malloc" in os.environ.get("LD_PRELOAD", ""):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not Linux
        return False
    if not hasattr(libc, "gnu_get_libc_version"):  # another C library: its mallopt, if any, means other things
        return False
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
