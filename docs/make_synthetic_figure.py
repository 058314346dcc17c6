"""Draw docs/synthetic_samples.png: a few built-in synthetic fundus images beside their masks.

Run from the repository root: ``python docs/make_synthetic_figure.py``. Uses matplotlib
when installed, otherwise composes the picture with Pillow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fastseg.data import synthetic_fundus

OUT = Path(__file__).with_name("synthetic_samples.png")
N = 3


def _with_matplotlib(samples):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(N, 3, figsize=(10, 3.4 * N))
    for row, s in zip(axes, samples, strict=True):
        frac = s.mask[s.fov].mean()
        row[0].imshow(s.image)
        row[0].set_title(f"{s.name}")
        row[1].imshow(s.image[..., 1], cmap="gray")
        row[1].set_title("green channel")
        row[2].imshow(s.mask, cmap="gray")
        row[2].set_title(f"vessel mask ({100 * frac:.1f} % of FOV)")
        for ax in row:
            ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(OUT, dpi=80)


def _with_pillow(samples):
    from PIL import Image

    rows = []
    for s in samples:
        green = np.repeat(s.image[..., 1:2], 3, axis=2)
        mask = np.repeat(s.mask[..., None], 3, axis=2).astype(np.uint8) * 255
        rows.append(np.concatenate([s.image, green, mask], axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).resize(
        (rows[0].shape[1] // 2, len(rows) * rows[0].shape[0] // 2)).save(OUT)


def main():
    samples = synthetic_fundus(N, seed=0)
    try:
        _with_matplotlib(samples)
    except ImportError:
        _with_pillow(samples)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
