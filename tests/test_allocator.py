import subprocess
import sys

import pytest

# Allocates and frees a 4 MiB block (1,024 pages, each written) 30 times and prints the page faults it took.
FAULTS = """
import resource
import numpy as np
from dae_jax import allocator
kept = allocator.keep_freed_memory()
np.ones(1 << 20, np.float32)  # the first block is faulted in either way
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(30):
    np.ones(1 << 20, np.float32)
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_blocks_are_reused_without_faulting_their_pages_in_again():
    done = subprocess.run([sys.executable, "-c", FAULTS], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    kept, faults = done.stdout.split()
    assert kept == "True"
    assert int(faults) < 100  # 30 blocks of 1,024 pages: mapped afresh, each would fault its pages in again
