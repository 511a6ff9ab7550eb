"""Figures written at the end of a run."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def image_rows(rows: dict[str, np.ndarray], path: str | Path, title: str | None = None) -> None:
    """One row per entry (label -> images [N, H, W, C] in [0, 1]), N images per row, saved as PNG."""
    n = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(rows), n, figsize=(1.2 * n, 1.3 * len(rows)), squeeze=False)
    for r, (label, images) in enumerate(rows.items()):
        for c in range(n):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(images):
                img = np.clip(np.asarray(images[c], np.float32), 0, 1)
                ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
        axes[r, 0].set_title(label, loc="left", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
