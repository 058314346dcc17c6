"""One entry for every kind of input: which path segments it, and its checks.

:func:`segment_array` is what :func:`fastseg.segment` and
:meth:`fastseg.Segmenter.predict_proba` both call: a volume network's (D, H, W) scan
goes to :mod:`.volume` (each kind's dense form), an image to :mod:`.tiles` (the 2-D
dense plan over tiles), after :mod:`.rescale` has brought the image's field of view to
the scale the model was trained at and before it brings the map back.

Before an image's work it estimates the memory the work adds (:func:`image_need`; a
volume's, :func:`~fastseg._inference.volume.segment_volume` itself) and, where the
automatic tile does not fit the memory limit (``fastseg._memory``), takes a smaller
one, or refuses with :class:`fastseg.errors.MemoryBudgetError` when even the smallest
does not fit.
"""
from __future__ import annotations

import math

import numpy as np

from fastseg import _memory, _validate
from fastseg._inference import cost, fcn, rescale
from fastseg._inference.tiles import Handover, image_bytes, image_probability, tile_within
from fastseg._inference.volume import network_cutter, segment_volume
from fastseg.data.patches import as_chw
from fastseg.errors import InvalidValueError

__all__ = ["segment_array", "check_volume_scale", "image_need"]


def _check_image(image) -> np.ndarray:
    arr = as_chw(image, "image")
    if not np.isfinite(arr).all():
        raise InvalidValueError("image: contains NaN or infinite values")
    return arr


def _channels_hint(image) -> str:
    """What a user who passed the wrong layout most likely meant."""
    if np.ndim(image) == 3 and np.shape(image)[2] in (1, 3):
        return ("; it looks like (H, W, C): pass fastseg.data.preprocess(image, fov) or "
                "image.transpose(2, 0, 1)")
    if np.ndim(image) == 3:
        return ("; if it is a (D, H, W) volume: this 2-D network records no volume kind "
                "(its patches could lie in any plane), so pass cutter="
                "fastseg.data.make_cutter('2d' or 'stacked2d', K, axis=...) or segment "
                "with the Segmenter trained on volumes")
    return ""


def check_volume_scale(scale) -> None:
    """Volumes are segmented at their own (or the model's) voxel size: `scale` None or 1."""
    if scale not in (None, 1):
        raise InvalidValueError(f"scale: volumes are segmented at their own voxel size, got "
                                f"scale={scale!r}; resample the volume first")


def segment_array(model, image, fov=None, patch_size=None, tile=None, progress=None,
                  method="auto", scale=None, caller="segment", cutter=None) -> np.ndarray:
    """:func:`fastseg.segment` on a bare network, naming `caller` in its errors.

    `image` may be a :class:`~fastseg._inference.tiles.Handover` (let go as soon as it
    is no longer needed). Parameters and result are :func:`fastseg.segment`'s.
    """
    if isinstance(image, Handover):
        image = image.take()
    kind = network_cutter(model, cutter, patch_size, caller)
    if kind is not None:
        check_volume_scale(scale)
        return segment_volume(model, image, kind, fov, tile, progress, method, caller)
    if patch_size is None:
        patch_size = fcn.infer_patch_size(model, caller)
    patch_size = _validate.as_int("patch_size", patch_size, minimum=1)
    dense = fcn.cached_plan(model, patch_size, caller)
    if dense.ndim != 2:
        raise InvalidValueError(f"{caller}: {type(model).__name__} is a {dense.ndim}-D "
                                "network; segment takes 2-D images")
    cost.check_method(method)
    factor = rescale.check_scale(scale)
    arr = _check_image(image)
    if arr.shape[0] != dense.in_channels:
        raise InvalidValueError(f"image: the network takes {dense.in_channels} channel(s), got "
                                f"{arr.shape[0]} (image shape {np.shape(image)}, read as (C, H, W))"
                                + _channels_hint(image))
    h, w = arr.shape[1:]
    mask = _validate.as_fov(fov, (h, w))
    tile = None if tile is None else _validate.as_int("tile", tile, minimum=1)
    if factor is None:  # measured on a FOV the caller gave, never on the whole image
        factor = rescale.auto_scale(getattr(model, "fov_diameter", None),
                                    None if fov is None else mask)
    del image  # with a Handover, arr is now held here alone, and let go below
    tile, method = _fit_image(dense, (h, w), factor, tile, method, caller)
    if factor == 1.0:
        source, arr = Handover(arr), None
        return image_probability(dense, source, mask, tile, method, progress)
    small = rescale.scaled_shape((h, w), factor)
    small_mask = rescale.resize_mask(mask, small)
    source, arr = Handover(rescale.resize(arr, small)), None
    prob = image_probability(dense, source, small_mask, tile, method, progress)
    prob = np.clip(rescale.resize(prob, (h, w)), 0.0, 1.0)
    prob[~mask] = 0.0
    return prob


def image_need(dense, hw, run_hw, plan) -> int:
    """Estimated bytes :func:`segment_array` adds for a photo of `hw` segmented at
    `run_hw` (its scale) by `plan`: :func:`~fastseg._inference.tiles.image_bytes`, the
    FOV it reads, and when resampled the small copy and FOV, then the map brought back
    (resized, clipped) beside the small one."""
    n, big = math.prod(run_hw), math.prod(hw)
    if tuple(run_hw) == tuple(hw):
        return big + image_bytes(dense, hw, plan)
    need = big + n + image_bytes(dense, run_hw, plan, own_input=True)
    return max(need, big + 4 * n + 9 * big)


def _fit_image(dense, hw, factor, tile, method, caller):
    """The (tile, method) to segment a photo of `hw` at `factor` within the memory limit:
    the asked ones when they fit, else a smaller tile; a MemoryBudgetError when none
    does. No limit: as asked, unchecked."""
    room = _memory.budget()
    if room is None:
        return tile, method
    run_hw = hw if factor == 1.0 else rescale.scaled_shape(hw, factor)
    chosen, how, need = tile_within(
        lambda t, m: image_need(dense, hw, run_hw, cost.schedule(dense, run_hw, m, t)),
        room.room, tile, method, cost.schedule(dense, run_hw, method, tile).tile,
        dense.stride)
    if need <= room.room:
        return chosen, how
    what = f"a {hw[0]}x{hw[1]} image" + ("" if factor == 1.0 else
                                         f" at scale {factor:.3g} ({run_hw[0]}x{run_hw[1]})")
    advice = (f"use a smaller tile than {tile} (--tile, tile=) or a smaller scale "
              "(--scale, scale=)" if tile is not None else
              "even its smallest tiles do not fit: segment it at a smaller scale (--scale, "
              "scale=) or in pieces (fastseg.distributed.segment_large)")
    raise _memory.refusal(caller, need, room, what, advice)
