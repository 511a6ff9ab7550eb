"""glibc's malloc told to keep freed blocks for reuse: ``keep_freed_memory()``.

By default glibc gives each block above a moving threshold (128 KiB to 32 MiB) its own ``mmap`` and
unmaps it when freed, so the next block of that size faults every page in again. A call that
allocates a few MiB (a batch's input copy and output, a framework's activations) then pays about one
fault per 4 KiB page, and which blocks are mapped depends on the process's history: timings jump
between runs. On 2 cores (Zen 5), dense32's ``Denoiser.denoise`` at batch 512 faulted 330-530 pages a
call and took 1.1-1.7 ms; with freed blocks kept, none and 0.38-0.46 ms. PyTorch's own CPU tuning guide
recommends an allocator that keeps freed memory (jemalloc, tcmalloc) for the same reason, and the
benchmark gives every framework's worker this setting (``dae_jax.studies.workers``).
"""

from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 64 << 20  # blocks up to this size come from the heap and are reused when freed
TRIM_THRESHOLD = 256 << 20  # free memory at the heap's top kept, up to this much, rather than returned


def keep_freed_memory() -> bool:
    """Sets glibc's malloc to serve blocks up to ``MMAP_THRESHOLD`` from its heap and keep up to
    ``TRIM_THRESHOLD`` of freed memory for reuse, for the rest of this process. Returns whether it could
    (False where the C library is not glibc: macOS, musl)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
