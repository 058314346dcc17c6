"""The volume half of :class:`fastseg.Segmenter`: kinds, training samples, the threshold
chosen on the training volumes."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from fastseg import _validate, metrics
from fastseg.data.volume_patches import CUTTER_KINDS, make_cutter
from fastseg.errors import InvalidValueError

__all__ = ["KINDS", "MODEL_KINDS", "AUTO_THRESHOLDS", "resolve_kind", "kind_cutter",
           "settings_of", "volume_samples", "structure_share", "choose_threshold",
           "check_threshold"]

#: What a Segmenter segments: ``"image"`` (2-D photos) or a volume kind.
KINDS = ("image", *CUTTER_KINDS)
#: Networks that segment only one kind of volume (the others take 2-D patches).
MODEL_KINDS = {"lai_triplanar": "triplanar", "lai3d": "3d"}
#: Thresholds ``threshold="auto"`` tries on the training volumes.
AUTO_THRESHOLDS = tuple(float(t) for t in np.round(np.arange(0.05, 0.951, 0.025), 3))


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


def choose_threshold(probs, masks, to_mask) -> float:
    """The threshold of :data:`AUTO_THRESHOLDS` with the best mean Dice over the
    training volumes, their masks made by ``to_mask(prob, threshold)`` (thresholding
    and the Segmenter's post-processing). Ties go to the lowest."""
    scores = [np.mean([metrics.dice(to_mask(p, t), m) for p, m in zip(probs, masks, strict=True)])
              for t in AUTO_THRESHOLDS]
    return AUTO_THRESHOLDS[int(np.argmax(scores))]


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
