"""One process of tests/training/test_multihost.py's image-folder test: which rows of a streamed folder it reads.

  python tests/training/folder_share_worker.py OUT.json NUM_PROCESSES PROCESS_ID PORT IMAGE_DIR DATA_DIR

Prepares the folder's TFDS dataset (process 0 first), then writes {"train": [...], "test": [...]}: the rows
of one training epoch and of the test split that this process's streams yield.
"""

import json
import sys

import jax

out, num_processes, process_id, port = sys.argv[1], *map(int, sys.argv[2:5])
image_dir, data_dir = sys.argv[5:7]
jax.config.update("jax_num_cpu_devices", 1)

from dae_jax import configs, sharding  # noqa: E402
from dae_jax.data import pipeline, stream  # noqa: E402

sharding.initialize_distributed(f"localhost:{port}", num_processes, process_id)
data = configs.base().data
data.dataset, data.source, data.image_dir, data.data_dir = "image_folder", "auto", image_dir, data_dir
splits = pipeline.prepare(data, channels=3)
spec = stream.ImageSpec(seed=0, size=(16, 16), channels=3)
train = [int(r) for b in stream.train_batches(splits.source_of("train"), spec, 2, epoch=0) for r in b["row"]]
test = [int(e["row"]) for e in stream.eval_images(splits.source_of("test"), spec)]
with open(out, "w") as f:
    json.dump({"train": train, "test": test, "sizes": splits.sizes}, f)
