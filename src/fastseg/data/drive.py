"""Loader for the DRIVE retinal vessel data set in its original directory layout."""

from __future__ import annotations

import re
from pathlib import Path

from fastseg.errors import InvalidValueError

from .folder import read_image, read_mask
from .record import Sample

__all__ = ["load_drive"]

_SPLITS = {"training": "training", "train": "training", "test": "test"}


def load_drive(root, split="training"):
    """Read one split of DRIVE (Staal et al. 2004) from its original layout.

    Expected files, for every image number ``NN`` found in ``images/``::

        <root>/<split>/images/NN_<split>.tif        565 x 584 RGB (W x H)
        <root>/<split>/1st_manual/NN_manual1.gif    vessels, first observer
        <root>/<split>/mask/NN_<split>_mask.gif     field of view
        <root>/<split>/2nd_manual/NN_manual2.gif    second observer (test only; optional)

    Parameters
    ----------
    root : str or Path
        The folder holding ``training/`` and ``test/``.
    split : {"training", "test"}, optional
        ``"train"`` is accepted for ``"training"``.

    Returns
    -------
    list of Sample
        Sorted by number; ``.name`` like ``"21_training"``; ``.image`` (H, W, 3) uint8;
        ``.mask`` first observer; ``.mask2`` second observer for the test split when
        ``2nd_manual/`` exists, else None.

    Raises
    ------
    FileNotFoundError
        The split folder, ``images/``, or any expected file is missing (named).
    ValueError
        A mask whose size differs from its image (both named), or an unknown split.
    """
    if split not in _SPLITS:
        raise InvalidValueError(f"split must be 'training' or 'test', got {split!r}")
    split = _SPLITS[split]
    base = Path(root) / split
    images_dir = base / "images"
    if not images_dir.is_dir():
        raise FileNotFoundError(f"DRIVE images folder not found: {images_dir}")
    pattern = re.compile(rf"^(\d+)_{split}\.tiff?$", re.IGNORECASE)
    numbered = sorted(
        (m.group(1), p) for p in images_dir.iterdir() if (m := pattern.match(p.name))
    )
    if not numbered:
        raise FileNotFoundError(f"no DRIVE images named NN_{split}.tif in {images_dir}")
    second_dir = base / "2nd_manual"
    use_second = split == "test" and second_dir.is_dir()
    samples = []
    for num, image_path in numbered:
        image = read_image(image_path)
        if image.ndim != 3:
            raise InvalidValueError(f"{image_path}: DRIVE images are RGB, got shape {image.shape}")
        files = {"mask": base / "1st_manual" / f"{num}_manual1.gif",
                 "fov": base / "mask" / f"{num}_{split}_mask.gif"}
        if use_second:
            files["mask2"] = second_dir / f"{num}_manual2.gif"
        arrays = {}
        for key, path in files.items():
            if not path.is_file():
                raise FileNotFoundError(f"DRIVE file missing for image {image_path.name}: {path}")
            arr = read_mask(path)
            if arr.shape != image.shape[:2]:
                raise InvalidValueError(f"{path} is {arr.shape[1]}x{arr.shape[0]} but "
                                        f"{image_path} is "
                                        f"{image.shape[1]}x{image.shape[0]} (W x H)")
            arrays[key] = arr
        samples.append(Sample(image, arrays["mask"], arrays["fov"], name=f"{num}_{split}",
                              mask2=arrays.get("mask2")))
    return samples
