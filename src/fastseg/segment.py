"""Whole-image segmentation with a patch classifier, computed densely and in tiles.

:func:`segment` gives, at every pixel, the class-1 probability that the patch
network gives for the patch :func:`fastseg.data.patches_at` cuts around that
pixel, but it never cuts a patch. It pads the image once with
:func:`fastseg.data.pad_for_patches` and runs the network's fully
convolutional form (:mod:`fastseg._dense`) over it, one output tile at a
time, so memory stays bounded whatever the image size.

Shift-and-stitch makes pooling exact: with a total stride S the dense
network yields the pixels ``dy, dy+S, ...`` of a row; running it on the S**2
windows shifted by (dy, dx) and interleaving the results fills every pixel.

Each convolution runs directly or by FFT (:mod:`fastseg._fftconv`), as
:mod:`fastseg._dense_cost` chooses per layer from the shapes (``method``); the
answers agree to float32 rounding. An image whose field of view is not at the
scale the model was trained at is resampled to it first (``scale``,
:mod:`fastseg._rescale`) and its probability map brought back.
"""
from __future__ import annotations

import numpy as np

from fastseg import _dense, _dense_cost, _progress, _rescale, _segment_volume, _validate
from fastseg.data.patches import _as_chw, pad_for_patches
from fastseg.errors import InvalidValueError

__all__ = ["segment"]

#: Largest intermediate array per tile that the automatic tile size aims for
#: (direct layers; see :mod:`fastseg._dense_cost` for the FFT layers' limits).
TILE_BUDGET_BYTES = _dense_cost.TILE_BUDGET_BYTES


def _check_image(image) -> np.ndarray:
    arr = _as_chw(image, "image")
    if not np.isfinite(arr).all():
        raise InvalidValueError("image: contains NaN or infinite values")
    return arr


def _check_fov(fov, hw) -> np.ndarray:
    return _validate.as_fov(fov, hw)


def _check_int(name, value, minimum):
    return _validate.as_int(name, value, minimum=minimum)


def _tiles(h, w, tile, fov):
    """Top-left corners of the output tiles that hold at least one FOV pixel."""
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            if fov is None or fov[y0:y0 + tile, x0:x0 + tile].any():
                yield y0, x0


def _segment_tile(dense, padded, y0, x0, th, tw, plan=None):
    """Class-1 probabilities of the th x tw output block at (y0, x0)."""
    return _dense.class1_probability(dense.run_block(padded, (y0, x0), (th, tw), plan))


class Handover:
    """A network input handed to :func:`_segment` by a caller that keeps no other
    reference to it (:meth:`fastseg.Segmenter.predict_proba`'s preprocessed photo):
    it is let go once padded, so a large photo's input does not stay in memory beside
    its padded copy for the whole segmentation."""

    __slots__ = ("array",)

    def __init__(self, array):
        self.array = array

    def take(self):
        array, self.array = self.array, None
        return array


def _dense_probability(dense, source, mask, tile, method, progress):
    """The probability map of a (C, H, W) network input at its own scale (in the
    :class:`Handover` `source`, let go once padded)."""
    arr = source.take()
    h, w = arr.shape[1:]
    plan = _dense_cost.schedule(dense, (h, w), method, tile)
    padded = pad_for_patches(arr, dense.patch_size)
    del arr
    prob = np.zeros((h, w), np.float32)
    for y0, x0 in _progress.each(_tiles(h, w, plan.tile, mask), progress, "tile"):
        th, tw = min(plan.tile, h - y0), min(plan.tile, w - x0)
        prob[y0:y0 + th, x0:x0 + tw] = _segment_tile(dense, padded, y0, x0, th, tw, plan)
    if mask is not None:
        prob[~mask] = 0.0
    return prob


def segment(model, image, fov=None, patch_size=None, tile=None, progress=None, *,
            method="auto", scale=None, cutter=None):
    """Class-1 probability of every pixel of an image, or voxel of a volume, from a
    patch classifier.

    Parameters
    ----------
    model : fastseg.nn.Module or fastseg.Segmenter
        A patch classifier: convolutions (no padding), max pooling, activations and
        dropout, then ``Flatten`` and ``Linear`` layers, giving at least two class
        scores per patch (class 1 is the foreground), e.g. ``models.lai2d()``; or a
        tri-planar network (``models.lai_triplanar()``). A fitted
        :class:`~fastseg.Segmenter` gives ``model.predict_proba(image, fov, ...)``
        (its own preprocessing, patch size, kind and calibration).
    image : array_like, (H, W) or (C, H, W); or (D, H, W) for a volume network
        The network's input (already preprocessed, e.g. by
        :func:`fastseg.data.preprocess` or :func:`fastseg.data.normalize_volume`);
        converted to float32. It is a volume when the network segments volumes
        (see `cutter`), else an image.
    fov : array_like, (H, W) or (D, H, W), optional
        Field of view, read as every FOV in fastseg is (:func:`fastseg._validate.as_fov`:
        non-zero inside, None the whole image). Pixels outside it get probability 0,
        and tiles with no FOV pixel are not computed at all.
    patch_size : int, optional
        The side K of the patches the network classifies. Default:
        ``model.patch_size`` if set, else the smallest K consistent with the first
        ``Linear`` layer.
    tile : int, optional
        Side of the square output block computed at once, from an input window of
        (tile + K - 1)**2 pixels (for a 3-D network a cube, for a tri-planar one the
        block's longest side). Default: chosen with the method (see
        :mod:`fastseg._dense_cost`): under :data:`TILE_BUDGET_BYTES` of intermediate
        arrays for direct layers, under ``FFT_TILE_BUDGET_BYTES`` with an FFT layer.
    progress : bool, optional
        Show a tqdm progress bar over the tiles. Default: when there are at least
        16 tiles and stderr is a terminal.
    method : {"auto", "direct", "fft"}
        How the convolutions run. ``"direct"``: fastseg's convolution kernels.
        ``"fft"``: every stride-1 convolution larger than 1x1 by overlap-save FFT.
        ``"auto"``: per layer, whichever the cost model estimates faster (for
        lai2d, the fully connected layer as a 16x16 convolution by FFT, the rest
        directly). The answers agree to float32 rounding (1e-4 in probability).
    scale : float, optional
        Resample the input by this factor before segmenting and the probability
        map back after (1: off). None (default): ``model.fov_diameter`` (the FOV
        diameter of the training images, which :class:`fastseg.Segmenter` records)
        over the diameter of `fov`, skipped within 5 % of 1, when both are known;
        without a `fov` nothing is rescaled (:class:`fastseg.Segmenter` and
        ``fastseg segment`` estimate one from the photo). Volumes are never rescaled.
    cutter : fastseg.data.PatchCutter or str, optional
        For volumes: the cutter whose patches the network classifies
        (:func:`fastseg.data.make_cutter`, or a kind name with `patch_size`). Default:
        the one the model records (``model.cutter``, set by :class:`~fastseg.Segmenter`
        and kept in its model file); else ``"triplanar"`` for a tri-planar network and
        ``"3d"`` for a 3-D one. A 2-D network records no kind of its own (its patches
        could lie in any plane, alone or stacked), so without one it segments images.

    Returns
    -------
    numpy.ndarray, (H, W) or (D, H, W) float32
        Softmax probability of class 1. At scale 1 it equals at every pixel (to
        float32 rounding) ``softmax(model(patches_at(image, [[r, c]], K)))[0, 1]``;
        at every voxel ``softmax(model(cutter(volume, [[d, h, w]])))[0, 1]``. Volumes
        run densely for each kind (:mod:`fastseg._segment_volume`): 2-D and stacked
        plane by plane, tri-planar as three towers summed at the hidden layer, 3-D
        over cubic blocks.

    Raises
    ------
    ValueError
        A NaN or infinite image, a wrong rank, a channel count the network does not
        take, a `fov` of another shape or with NaN, an int argument out of range, a
        network that cannot run densely (e.g. zero padding inside the patch, which
        depends on where each patch sits), an unknown `method`, ``method="fft"``
        where no layer can take it, or a non-positive `scale`.
    TypeError
        A `model` that is not a fastseg module, a non-numeric image or `scale`, or a
        non-integer `patch_size` or `tile`.

    Notes
    -----
    The work is the network's fully convolutional form: convolutions run once over
    the padded image, the first fully connected layer becomes a K_f x K_f
    convolution over the final feature map (its weight reshaped from
    ``(out, F*K_f*K_f)`` to ``(out, F, K_f, K_f)``) and later ones 1 x 1
    convolutions. For lai2d that first layer costs about 12.8 M multiply-adds per
    pixel directly and about 0.2 M by FFT.
    """
    from fastseg.segmenter import Segmenter

    if isinstance(model, Segmenter):
        if patch_size is not None or cutter is not None:
            raise InvalidValueError("segment: a Segmenter brings its own patch size and kind; "
                                    "pass neither patch_size nor cutter with it")
        return model.predict_proba(image, fov, tile=tile, progress=progress, method=method,
                                   scale=scale)
    return _segment(model, image, fov, patch_size, tile, progress, method, scale, "segment",
                    cutter)


def _segment(model, image, fov, patch_size, tile, progress, method, scale, caller,
             cutter=None):
    """:func:`segment`, naming `caller` in the errors of the dense plan; `image` may
    be a :class:`Handover`."""
    if isinstance(image, Handover):
        image = image.take()
    kind = _segment_volume.volume_cutter(model, cutter, patch_size, caller)
    if kind is not None:
        if scale not in (None, 1):
            raise InvalidValueError(f"scale: volumes are segmented at their own voxel size, got "
                                    f"scale={scale!r}; resample the volume first")
        return _segment_volume.segment_volume(model, image, kind, fov, tile, progress, method,
                                              caller)
    if patch_size is None:
        patch_size = _dense.infer_patch_size(model, caller)
    patch_size = _check_int("patch_size", patch_size, 1)
    dense = _dense.cached_plan(model, patch_size, caller)
    if dense.ndim != 2:
        raise InvalidValueError(f"{caller}: {type(model).__name__} is a {dense.ndim}-D "
                                "network; segment takes 2-D images")
    _dense_cost.check_method(method)
    factor = _rescale.check_scale(scale)
    arr = _check_image(image)
    if arr.shape[0] != dense.in_channels:
        hint = ""
        if np.ndim(image) == 3 and np.shape(image)[2] in (1, 3):
            hint = ("; it looks like (H, W, C): pass fastseg.data.preprocess(image, fov) or "
                    "image.transpose(2, 0, 1)")
        elif np.ndim(image) == 3:
            hint = ("; if it is a (D, H, W) volume: this 2-D network records no volume kind "
                    "(its patches could lie in any plane), so pass cutter="
                    "fastseg.data.make_cutter('2d' or 'stacked2d', K, axis=...) or segment "
                    "with the Segmenter trained on volumes")
        raise InvalidValueError(f"image: the network takes {dense.in_channels} channel(s), got "
                                f"{arr.shape[0]} (image shape {np.shape(image)}, read as (C, H, W))"
                                + hint)
    h, w = arr.shape[1:]
    mask = _check_fov(fov, (h, w))
    tile = None if tile is None else _check_int("tile", tile, 1)
    if factor is None:  # measured on a FOV the caller gave, never on the whole image
        factor = _rescale.auto_scale(getattr(model, "fov_diameter", None),
                                     None if fov is None else mask)
    del image  # with a Handover, arr is now held here alone, and let go below
    if factor == 1.0:
        source, arr = Handover(arr), None
        return _dense_probability(dense, source, mask, tile, method, progress)
    small = _rescale.scaled_shape((h, w), factor)
    small_mask = _rescale.resize_mask(mask, small)
    source, arr = Handover(_rescale.resize(arr, small)), None
    prob = _dense_probability(dense, source, small_mask, tile, method, progress)
    prob = np.clip(_rescale.resize(prob, (h, w)), 0.0, 1.0)
    prob[~mask] = 0.0
    return prob
