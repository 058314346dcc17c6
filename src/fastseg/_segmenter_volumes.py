"""The volume half of :class:`fastseg.Segmenter`: kinds, training samples, the threshold
chosen on the training volumes."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from fastseg import _validate, metrics
from fastseg.data.volume_patches import CUTTER_KINDS, make_cutter
from fastseg.errors import InvalidTypeError, InvalidValueError

__all__ = ["KINDS", "MODEL_KINDS", "AUTO_THRESHOLDS", "resolve_kind", "kind_cutter",
           "settings_of", "volume_samples", "structure_share", "choose_threshold",
           "check_threshold", "normalization", "check_spacing", "volume_augment",
           "conformed_samples"]

#: What a Segmenter segments: ``"image"`` (2-D photos) or a volume kind.
KINDS = ("image", *CUTTER_KINDS)
#: Networks that segment only one kind of volume (the others take 2-D patches).
MODEL_KINDS = {"lai_triplanar": "triplanar", "lai3d": "3d"}
#: Thresholds ``threshold="auto"`` tries on the training volumes: 0.05 to 0.95 by 0.025,
#: then 0.96 to 0.99 (balanced batches make a whole-brain network's boundary voxels
#: confident: its best threshold on the training brain can lie above 0.95).
AUTO_THRESHOLDS = tuple(float(t) for t in np.round(np.arange(0.05, 0.951, 0.025), 3)) + \
    (0.96, 0.97, 0.98, 0.99)


def resolve_kind(kind, model) -> str:
    """The kind a Segmenter segments: `kind`, or by default the model's own
    (:data:`MODEL_KINDS`), else ``"image"``."""
    if kind is None:
        return MODEL_KINDS.get(model, "image")
    if kind not in KINDS:
        raise InvalidValueError(f"kind: expected one of {list(KINDS)}, got {kind!r}")
    own = MODEL_KINDS.get(model)
    if own is not None and kind != own:
        raise InvalidValueError(f"kind: {model} segments the {own} kind, not {kind!r}")
    if own is None and kind in ("triplanar", "3d"):
        raise InvalidValueError(f"kind: the {kind} kind needs "
                                f"{'lai_triplanar' if kind == 'triplanar' else 'lai3d'}, "
                                f"not {model!r}")
    return kind


def kind_cutter(kind, patch_size, axis, slices):
    """The cutter of a volume kind with a Segmenter's options."""
    options = {}
    if kind in ("2d", "stacked2d"):
        options["axis"] = axis
    if kind == "stacked2d":
        options["slices"] = slices
    return make_cutter(kind, patch_size, **options)


#: The model a Segmenter names for each volume kind it reads from a bare network file.
_MODEL_OF_KIND = {"2d": "lai2d", "stacked2d": "lai_stacked2d", "triplanar": "lai_triplanar",
                  "3d": "lai3d"}


def settings_of(cutter) -> dict:
    """Segmenter arguments that reproduce a cutter (a bare volume network's file)."""
    config = cutter.config()
    settings = {"model": _MODEL_OF_KIND[config.pop("kind")], "patch_size": config.pop("size")}
    settings["kind"] = cutter.kind
    settings.update(config)  # axis, slices
    return settings


def volume_samples(images, masks, fovs):
    """Training volumes as the samples :class:`~fastseg.data.VolumePatchSampler` takes."""
    if fovs is not None and any(f is not None for f in fovs):
        raise InvalidValueError("fovs: volumes are trained on whole (cropped) volumes; pass "
                                "fovs=None")
    samples = []
    for i, (image, mask) in enumerate(zip(images, masks, strict=True)):
        arr = np.asarray(image)
        if arr.ndim != 3:
            raise InvalidValueError(f"images[{i}]: expected a (D, H, W) volume, got shape "
                                    f"{arr.shape}")
        samples.append(SimpleNamespace(image=arr, mask=_validate.as_mask(
                                           mask, arr.shape, name=f"masks[{i}]", binary=True),
                                       name=f"volumes[{i}]"))
    return samples


def structure_share(samples) -> float:
    """The share of structure voxels over all training voxels (the class prior)."""
    return sum(int(s.mask.sum()) for s in samples) / max(sum(s.mask.size for s in samples), 1)


#: ``threshold="auto"`` takes, of the thresholds whose mean training Dice is within this of
#: the best, the one with the truest volumes. Near its best a whole-brain network's Dice on
#: its training brain is flat (for each of the demo's four networks three or four of the
#: thresholds 0.925-0.98 lie within 0.004 of it) while the volume moves ~5 % a step; volumes
#: are what a user reads off (``volumes.csv``).
DICE_TOLERANCE = 0.005


def choose_threshold(probs, truths, to_labels) -> float:
    """The threshold of :data:`AUTO_THRESHOLDS` for the training volumes.

    ``to_labels(prob, threshold)`` makes a volume's labels as the Segmenter does
    (thresholding and post-processing; a bool mask, or 1 left / 2 right); `truths` are
    the same kind of labels. Of the thresholds whose mean Dice (all labels as one
    structure) lies within :data:`DICE_TOLERANCE` of the best, the one whose worst
    volume error (over the volumes and each label of their truths, relative to the
    truth's) is smallest; ties go to the lowest threshold.
    """
    truths = [np.asarray(truth) for truth in truths]
    # what the thresholds do not change, once: each truth's structure and label volumes
    structures = [truth != 0 for truth in truths]
    volumes = [dict(zip(*np.unique(truth[inside], return_counts=True), strict=True))
               for truth, inside in zip(truths, structures, strict=True)]
    dice, worst = [], []
    for t in AUTO_THRESHOLDS:
        scores, errors = [], []
        for p, inside, want in zip(probs, structures, volumes, strict=True):
            labels = np.asarray(to_labels(p, t))
            scores.append(metrics.dice(labels != 0, inside))
            errors += [abs(int(np.count_nonzero(labels == value)) - int(n)) / int(n)
                       for value, n in want.items()]
        dice.append(np.mean(scores))
        worst.append(max(errors, default=0.0))
    near_best = np.flatnonzero(np.asarray(dice) >= max(dice) - DICE_TOLERANCE)
    return AUTO_THRESHOLDS[int(near_best[np.argmin(np.asarray(worst)[near_best])])]


def check_threshold(threshold, kind) -> None:
    """A number in [0, 1], or ``"auto"`` for volumes."""
    if isinstance(threshold, str):
        if threshold != "auto":
            raise InvalidValueError(f"threshold: expected a number in [0, 1] or 'auto', got "
                                    f"{threshold!r}")
        if kind == "image":
            raise InvalidValueError("threshold: 'auto' is chosen on the training volumes; "
                                    "image segmenters take a number")
        return
    _validate.as_real("threshold", threshold, 0, 1)


def normalization(value):
    """A Segmenter's `normalize` as a method name: ``"zscore"``, ``"robust"`` or None."""
    if value is True or value == "zscore":
        return "zscore"
    if value == "robust":
        return "robust"
    if value is False or value is None:
        return None
    raise InvalidValueError(f"normalize: expected 'robust', 'zscore', True or False, got "
                            f"{value!r}")


def check_spacing(value) -> tuple:
    """A Segmenter's `spacing`: three voxel sizes in mm, each in (0.1, 10)."""
    try:
        sizes = tuple(float(s) for s in value)
    except (TypeError, ValueError):
        raise InvalidTypeError(f"spacing: expected 3 voxel sizes in mm, got {value!r}") from None
    if len(sizes) != 3 or not all(0.1 <= s <= 10 for s in sizes):
        raise InvalidValueError(f"spacing: expected 3 voxel sizes between 0.1 and 10 mm, got "
                                f"{value!r}")
    return sizes


def volume_augment(value):
    """A Segmenter's `augment` for volumes: an :class:`~fastseg.data.Augment` or None."""
    from fastseg.data import Augment

    if value is True:
        return Augment()
    if value is False or value is None:
        return None
    if isinstance(value, Augment):
        return value
    if isinstance(value, dict):
        return Augment.from_config(value)
    raise InvalidTypeError(f"augment: expected True, False or Augment options (a dict), got "
                           f"{type(value).__name__}")


def augment_before_sharpness(value):
    """A volume model file's `augment` from before the sharpness transform (settings
    version < 4), as what was on then: its options with sharpness 0 (``False`` stays)."""
    from fastseg.data import Augment

    if value is True:
        value = {}
    if isinstance(value, dict) and "sharpness" not in value:
        return Augment.from_config({**value, "sharpness": 0.0}).config()
    return value


def conformed_samples(images, masks, affines, spacing):
    """Training volumes and masks conformed to `spacing` (RAS+, the model's voxel size):
    each mask resampled with its scan and kept where at least half a voxel of it is."""
    from fastseg.data import conform

    if len(affines) != len(images):
        raise InvalidValueError(f"affines: need one per image, got {len(affines)} for "
                                f"{len(images)} images")
    out_images, out_masks = [], []
    for i, (image, mask, affine) in enumerate(zip(images, masks, affines, strict=True)):
        scan = conform(image, affine, spacing, name=f"images[{i}]")
        m = _validate.as_mask(mask, np.shape(image), name=f"masks[{i}]", binary=True)
        out_images.append(scan.array)
        out_masks.append(conform(m.astype(np.float32), scan.native_affine, spacing,
                                 name=f"masks[{i}]").array >= 0.5)
    return out_images, out_masks
