"""A small synthetic 'brain' with two 'hippocampi' for the scan tests: an ellipsoid of tissue
with two brighter ellipsoids left and right of its midline, on a RAS+ grid centred on the
world origin (so world x < 0 is left, as in MNI space)."""
import numpy as np

#: (centre offset from the brain centre in mm (x, y, z), radii in mm) of each side; the left
#: one is larger, so that a mirror image is told apart.
STRUCTURES = {1: ((-11.0, 2.0, -3.0), (4.5, 6.5, 5.0)), 2: ((11.0, 2.0, -3.0), (3.8, 5.5, 4.2))}


def synthetic_brain(shape=(46, 40, 36), spacing=(1.0, 1.0, 1.0), seed=0):
    """(image float32, labels uint8 1 left / 2 right, affine) of a brain sampled at
    `spacing` mm over the same field of view whatever the spacing."""
    spacing = np.asarray(spacing, float)
    extent = np.asarray(shape, float)  # mm at 1 mm
    n = np.maximum(1, np.round(extent / spacing)).astype(int)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -(n - 1) / 2 * spacing  # voxel centres symmetric about the origin
    grid = np.meshgrid(*[np.arange(k) * s + o for k, s, o in zip(n, spacing, affine[:3, 3],
                                                                    strict=True)], indexing="ij")
    radii = extent / 2 - 3
    brain = sum((g / r) ** 2 for g, r in zip(grid, radii, strict=True)) < 1
    rng = np.random.default_rng(seed)
    image = np.where(brain, 100.0, 0.0) + brain * rng.normal(0, 6, n)
    labels = np.zeros(n, np.uint8)
    for label, (centre, rad) in STRUCTURES.items():
        inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, rad, strict=True)) < 1
        labels[inside & brain] = label
    image = image + 70.0 * (labels > 0)
    return image.astype(np.float32), labels, affine
