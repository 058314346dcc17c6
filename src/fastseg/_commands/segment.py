"""``fastseg segment MODEL INPUT... --out DIR``: masks, probability maps and overlays."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fastseg import viz
from fastseg._commands import CLIError, files
from fastseg.data import read_image


def _load_segmenter(path):
    from fastseg.segmenter import Segmenter

    if not Path(path).is_file():
        raise CLIError(f"model file not found: {path}")
    return Segmenter.load(path)


def _network_input(image, channels):
    """The image in the layout the segmenter's preprocessing needs."""
    if channels == "rgb" and image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)  # greyscale photo, colour model
    return image


def _fov_for(path, image, fovs):
    if fovs is None:
        return files.estimate_fov(image)
    match = fovs.get(files.key(path))
    if match is None:
        raise CLIError(f"no FOV file for {path.name} in the --fov folder (expected a name "
                       f"like {files.key(path)}_mask.png)")
    return files.read_fov(match, image.shape[:2], f"image {path.name}")


def run(args) -> int:
    seg = _load_segmenter(args.model)
    inputs = files.image_files(args.inputs)
    fovs = files.keyed(args.fov, "FOV") if args.fov else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    threshold = seg.threshold if args.threshold is None else args.threshold
    from tqdm.auto import tqdm

    stems = [p.stem for p in inputs]
    if len(set(stems)) != len(stems):
        raise CLIError("two inputs have the same file stem; their outputs would collide")
    for path in tqdm(inputs, desc="images", unit="image", disable=None if len(inputs) > 1
                     else True):
        image = read_image(path)
        fov = _fov_for(path, image, fovs)
        prob = seg.predict_proba(_network_input(image, seg.channels), fov, tile=args.tile,
                                 progress=None)
        mask = (prob >= threshold) & fov
        viz.save_image(out / f"{path.stem}_prob.png", viz.probability_image(prob))
        viz.save_image(out / f"{path.stem}_mask.png", viz.mask_image(mask))
        viz.save_image(out / f"{path.stem}_overlay.png", viz.overlay_mask(image, mask))
        print(f"{path.name}: {image.shape[1]}x{image.shape[0]}, {int(mask.sum())} vessel "
              f"pixels ({mask.sum() / max(fov.sum(), 1):.1%} of the FOV) -> "
              f"{os.path.join(args.out, path.stem)}_{{prob,mask,overlay}}.png")
    return 0
