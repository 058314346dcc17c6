"""Whole-image segmentation with a patch classifier, computed densely and in tiles.

:func:`segment` gives, at every pixel, the class-1 probability that the patch
network gives for the patch :func:`fastseg.data.patches_at` cuts around that
pixel, but it never cuts a patch. It pads the image once with
:func:`fastseg.data.pad_for_patches` and runs the network's fully
convolutional form over it, one output tile at a time, so memory stays bounded
whatever the image size.

Shift-and-stitch makes pooling exact: with a total stride S the dense
network yields the pixels ``dy, dy+S, ...`` of a row; running it on the S**2
windows shifted by (dy, dx) and interleaving the results fills every pixel.

Each convolution runs directly or by FFT, as a cost model chooses per layer from
the shapes (``method``); the answers agree to float32 rounding. An image whose
field of view is not at the scale the model was trained at is resampled to it
first (``scale``) and its probability map brought back. The work lives in the
private package :mod:`fastseg._inference`; this module is its public face.
"""
from __future__ import annotations

from fastseg._inference import segment_array
from fastseg._inference.dispatch import check_volume_scale
from fastseg._inference.scan import has_affine, segment_scan
from fastseg._inference.volume import network_cutter
from fastseg.errors import InvalidValueError
from fastseg.segmenter import Segmenter

__all__ = ["segment"]


def segment(model, image, fov=None, patch_size=None, tile=None, progress=None, *,
            method="auto", scale=None, cutter=None, affine=None, spacing=None):
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
        :mod:`fastseg._inference.cost`): under ``TILE_BUDGET_BYTES`` of intermediate
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
    affine : array_like (4, 4), optional
        Volumes: the scan's voxel-to-world matrix. The scan is then conformed to the
        network's grid -- RAS+ axis order, `spacing` -- segmented there, and the map
        brought back onto the scan's own grid (interpolated): any axis order and voxel
        size in, a map that overlays the scan out. A NIfTI image or a
        :class:`fastseg.data.Volume` brings its own. A Segmenter conforms to its own
        spacing (and normalises, and searches a whole brain, as it was trained).
    spacing : sequence of 3 floats, optional
        The voxel size (mm) the network works at, with `affine` (default 1 mm).

    Returns
    -------
    numpy.ndarray, (H, W) or (D, H, W) float32
        Softmax probability of class 1. At scale 1 it equals at every pixel (to
        float32 rounding) ``softmax(model(patches_at(image, [[r, c]], K)))[0, 1]``;
        at every voxel ``softmax(model(cutter(volume, [[d, h, w]])))[0, 1]``. Volumes
        run densely for each kind (:mod:`fastseg._inference.volume`): 2-D and stacked
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
    if isinstance(model, Segmenter):
        if patch_size is not None or cutter is not None or spacing is not None:
            raise InvalidValueError("segment: a Segmenter brings its own patch size, kind and "
                                    "spacing; pass none of patch_size, cutter, spacing with it")
        return model.predict_proba(image, fov, tile=tile, progress=progress, method=method,
                                   scale=scale, affine=affine)
    if affine is not None or has_affine(image):
        kind = network_cutter(model, cutter, patch_size, "segment")
        if kind is None:
            raise InvalidValueError("affine: this network segments images; a scan with an "
                                    "affine needs a volume network (pass cutter= for a 2-D one)")
        check_volume_scale(scale)
        return segment_scan(model, image, kind, affine=affine,
                            spacing=(1.0, 1.0, 1.0) if spacing is None else spacing, fov=fov,
                            tile=tile, progress=progress, method=method).prob
    if spacing is not None:
        raise InvalidValueError("spacing: it says the voxel size a scan is conformed to; give "
                                "the scan's affine too")
    return segment_array(model, image, fov, patch_size, tile, progress, method, scale, "segment",
                         cutter)
