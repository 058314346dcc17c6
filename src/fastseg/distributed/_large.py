"""``segment_large``: one image as a dask array, each chunk segmented with the margin it needs.

A pixel's probability depends only on its patch, the K x K window that
:func:`fastseg.data.pad_for_patches` places ``K // 2`` before it and
``K - 1 - K // 2`` after it on each spatial axis. So each chunk is handed to
:func:`fastseg.segment` with exactly that margin of its neighbours
(``map_overlap`` with ``boundary="none"``), and only its own pixels are kept:
inside the image their patches are all real pixels, and at the image's edges
``segment`` pads the chunk as it pads the whole image (reflection about the
edge pixel), provided a chunk holds at least K pixels on each axis, which
:func:`_chunks_of_at_least` ensures. The result is bit for bit that of one
``fastseg.segment`` call.

A volume (a network that records a volume kind's cutter) is cut the same way in
three axes: its cutter pads by reflection too, and the margin on each axis is half
the extent of the kind's patch there (none along a 2-D kind's slicing axis, the
stacked planes' half-depth for stacked 2-D, the patch's half-width elsewhere).
"""
from __future__ import annotations

import os

import dask
import dask.array as da
import numpy as np

import fastseg
from fastseg import _validate
from fastseg._inference import fcn
from fastseg._inference.volume import network_cutter
from fastseg.distributed import _cluster, _worker
from fastseg.errors import InvalidTypeError, InvalidValueError

#: Spatial axes of the images segment_large takes (a volume has 3).
SPATIAL_AXES = 2
VOLUME_AXES = 3


def overlap_depth(patch_shape) -> dict:
    """``{axis: (before, after)}`` of the margin a chunk needs, per spatial axis of a
    channel-first array (axis 0, the channels, gets none)."""
    depth = {0: 0}
    for axis, k in enumerate(patch_shape, start=1):
        depth[axis] = (k // 2, k - 1 - k // 2)
    return depth


def _chunks_of_at_least(size, chunks) -> tuple:
    """`chunks` of one axis, neighbours merged until each holds at least `size`."""
    merged = []
    for c in chunks:
        if merged and merged[-1] < size:
            merged[-1] += c
        else:
            merged.append(c)
    if len(merged) > 1 and merged[-1] < size:
        merged[-2] += merged.pop()
    return tuple(merged)


def _fov_channel(fov):
    """The FOV as one more float32 channel of the image, so it is cut with the same margins:
    1 inside (any non-zero value), 0 outside, NaN kept for ``segment`` to refuse by name."""
    if fov.dtype.kind == "f":
        return da.where(da.isnan(fov), np.float32(np.nan), fov != 0).astype(np.float32)
    if fov.dtype.kind not in "biu":
        raise InvalidTypeError(f"fov: expected a numeric or bool array, got dtype {fov.dtype}")
    return (fov != 0).astype(np.float32)


def _segment_block(block, payload, patch_size, has_fov, options, volume=False):
    seg = _worker.segmenter(payload)
    image, fov = (block[:-1], block[-1]) if has_fov else (block, None)
    if volume:
        image = image[0]  # (D, H, W): the cutter makes the network's channels
    with _worker.compute_lock:
        return fastseg.segment(seg.model_, image, fov=fov, patch_size=patch_size,
                               progress=False, **options)


def _network(model):
    """(nn.Module, patch size) of a model file, Segmenter or module."""
    from fastseg import nn
    from fastseg.segmenter import Segmenter

    if isinstance(model, (str, os.PathLike)):
        model = Segmenter.load(model)
    if isinstance(model, Segmenter):
        return model._fitted(), int(model.patch_size)
    if isinstance(model, nn.Module):
        return model, None
    raise InvalidTypeError(f"model: expected a fastseg.nn.Module, a fitted fastseg.Segmenter "
                           f"or a model file path, got {type(model).__name__}")


def _as_dask(array, spatial, axes=SPATIAL_AXES):
    """A dask array of `array`; one read straight into the spatial chunks when it is not one
    already (a zarr or other lazy array is never loaded whole)."""
    if isinstance(array, da.Array):
        return array
    arr = array if hasattr(array, "shape") and hasattr(array, "dtype") else np.asarray(array)
    if spatial is None or arr.ndim < axes:
        return da.from_array(arr, chunks="auto")
    return da.from_array(arr, chunks=(-1,) * (arr.ndim - axes) + spatial)


def _spatial_chunks(chunks, axes=SPATIAL_AXES):
    if chunks is None or chunks == "auto":
        return None
    if isinstance(chunks, (int, np.integer)) and not isinstance(chunks, bool):
        chunks = (chunks,) * axes
    chunks = tuple(chunks)
    if len(chunks) != axes:
        layout = "(H, W)" if axes == SPATIAL_AXES else "(D, H, W)"
        raise InvalidValueError(f"chunks: expected an int or {axes} ints {layout}, got "
                                f"{chunks!r}")
    return tuple(_validate.as_int("chunks", c, minimum=1) for c in chunks)


def build(model, image, *, chunks=1024, fov=None, patch_size=None, **segment_kwargs):
    """The lazy probability map and the model payload it holds."""
    net, size = _network(model)
    if segment_kwargs.get("scale") not in (None, 1):
        raise InvalidValueError("scale: segment_large segments at the image's own scale (a "
                                "FOV cut in chunks has no one diameter); resample the image "
                                "first")
    segment_kwargs = {**segment_kwargs, "scale": 1}
    cutter = network_cutter(net, patch_size=patch_size, caller="segment_large")
    if cutter is None:
        if patch_size is None:
            patch_size = size if size is not None else fcn.infer_patch_size(net)
        patch_size = _validate.as_int("patch_size", patch_size, minimum=1)
        in_channels = fcn.plan(net, patch_size).in_channels  # refuses what cannot run dense
        extent, axes, layout = (patch_size,) * SPATIAL_AXES, SPATIAL_AXES, "(H, W) or (C, H, W)"
    else:
        patch_size, in_channels = None, 1
        extent, axes, layout = cutter.extent(), VOLUME_AXES, "(D, H, W)"
        segment_kwargs = {**segment_kwargs, "cutter": cutter}
    spatial = _spatial_chunks(chunks, axes)

    x = _as_dask(image, spatial, axes)
    if x.ndim == axes:
        x = x[None]
    if x.ndim != axes + 1 or 0 in x.shape or x.dtype.kind not in "biuf":
        raise InvalidValueError(f"image: expected a non-empty real {layout} array, got shape "
                                f"{x.shape} dtype {x.dtype}")
    if x.shape[0] != in_channels:
        raise InvalidValueError(f"image: the network takes {in_channels} channel(s), got "
                                f"{x.shape[0]} (image shape {x.shape}, read as (C, H, W))")
    if cutter is not None:
        cutter.check_fits(x.shape[1:], "image")
    x = x.astype(np.float32)
    if fov is not None:
        f = _as_dask(fov, spatial, axes)
        if f.shape != x.shape[1:]:
            raise InvalidValueError(f"fov: expected shape {x.shape[1:]} (that of the image), "
                                    f"got {f.shape}")
        x = da.concatenate([x, _fov_channel(f)[None]], axis=0)
    x = x.rechunk((-1,) + (spatial if spatial is not None else x.chunks[1:]))
    x = x.rechunk((-1,) + tuple(_chunks_of_at_least(k, c)
                                for k, c in zip(extent, x.chunks[1:], strict=True)))

    payload = _worker.ModelPayload.from_model(net)
    model_key = dask.delayed(payload, pure=True)  # one key: each worker fetches it once
    prob = da.map_overlap(
        _segment_block, x, depth=overlap_depth(extent),
        boundary="none", trim=True, drop_axis=0, dtype=np.float32,
        meta=np.empty((0,) * axes, np.float32), payload=model_key,
        patch_size=patch_size, has_fov=fov is not None, options=segment_kwargs,
        volume=cutter is not None, name="fastseg-segment-large")
    return prob, payload


def _conformed(model, image, affine, fov):
    """The scan conformed to the model's grid (and its FOV), to segment there."""
    from fastseg.data import conform
    from fastseg.segmenter import Segmenter

    if isinstance(model, (str, os.PathLike)):
        model = Segmenter.load(model)
    spacing = getattr(model, "spacing_", None) if isinstance(model, Segmenter) else None
    scan = conform(np.asarray(image), affine, spacing or (1.0, 1.0, 1.0))
    if fov is not None:
        mask = _validate.as_fov(np.asarray(fov), scan.native_shape)
        fov = conform(mask.astype(np.float32), affine, scan.spacing).array >= 0.5
    return model, scan, fov


def segment_large(model, image, client=None, chunks=1024, *, fov=None, out=None,
                  patch_size=None, overwrite=False, n_workers=None, threads_per_worker=None,
                  affine=None, **segment_kwargs):
    scan = None
    if affine is not None:
        model, scan, fov = _conformed(model, image, affine, fov)
        image = scan.array
    prob, _ = build(model, image, chunks=chunks, fov=fov, patch_size=patch_size,
                    **segment_kwargs)
    if scan is not None:
        back = dask.delayed(lambda p: np.clip(scan.to_native(p), 0.0, 1.0))(prob)
        prob = da.from_delayed(back, shape=scan.native_shape, dtype=np.float32)
    if out is None:
        if client is not None:
            with _cluster.connect(client) as c:
                c.register_plugin(_worker.ThreadsPlugin(fastseg.get_backend()))
        return prob
    if not overwrite and os.path.exists(out):
        raise FileExistsError(f"out: {out} exists; pass overwrite=True to replace it")
    if not all(len(set(c[:-1])) <= 1 and c[-1] <= c[0] for c in prob.chunks):
        # zarr's grid is regular (the last chunk may be smaller): one dask chunk per
        # zarr chunk, so no two tasks ever write the same file.
        prob = prob.rechunk(tuple(max(c) for c in prob.chunks))
    with _cluster.connect(client, n_workers, threads_per_worker) as c:
        c.register_plugin(_worker.ThreadsPlugin(fastseg.get_backend()))
        store = da.to_zarr(prob, os.fspath(out), mode="w" if overwrite else "w-",
                           compute=False)
        c.compute(store, sync=True)
    return da.from_zarr(os.fspath(out))
