"""Segmentation past one machine, on a Dask cluster: ``pip install "fastseg[distributed]"``.

:func:`segment_many` segments many files, one task per file, and writes what
``fastseg segment`` writes; :func:`segment_large` segments one image too large
for one process as a dask array. Both give exactly the answers of one machine.
Sizing workers and what limits scaling: docs/scaling.md.

Dask stays optional: this module imports without it, and its functions raise an
``MissingDependencyError`` (an ``ImportError``) that says what to install.
"""
from __future__ import annotations

__all__ = ["segment_many", "segment_large", "require", "INSTALL"]

#: What to run when Dask is missing.
INSTALL = 'pip install "fastseg[distributed]"'


def require(what: str) -> None:
    """Raise a ``MissingDependencyError`` (an ``ImportError``) naming `what` and the install
    command when Dask is missing."""
    from fastseg.errors import MissingDependencyError

    try:
        import dask.array  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(f"{what} needs Dask, which is not installed here (no "
                                     f"module {exc.name!r}): {INSTALL}") from None


def segment_many(model, inputs, out, client=None, skip_existing=False, *, fovs=None,
                 threshold=None, n_workers=None, threads_per_worker=None, progress=None,
                 **predict_kwargs):
    """Segment many image or volume files on a Dask cluster; write what ``fastseg segment``
    writes.

    Each input ``<stem>.<ext>`` gives ``out/<stem>_prob.png``, ``<stem>_mask.png``
    and ``<stem>_overlay.png`` (a volume ``<stem>.nii[.gz]``: ``<stem>_prob.nii.gz``,
    ``<stem>_mask.nii.gz`` and the three plane PNGs), byte for byte those of the sequential
    ``fastseg segment``, each written atomically by the worker that segmented it
    (``out`` must be on storage the workers share with the caller). The model
    file's bytes go once to each worker (a worker plugin, also given to workers
    that join or replace a dead one), never inside the tasks. A worker killed
    mid-run loses nothing: the scheduler runs its tasks again elsewhere.

    Parameters
    ----------
    model : str, os.PathLike or fastseg.Segmenter
        A model file (.fseg) or a fitted segmenter.
    inputs : str, os.PathLike or sequence of them
        Image files, or folders whose image files (one level deep) are taken.
    out : str or os.PathLike
        Output folder (created).
    client : distributed.Client or str, optional
        A client of a running cluster, or its scheduler's address. None: start a
        ``LocalCluster`` of worker processes and shut it down at the end.
    skip_existing : bool
        Skip inputs whose three outputs exist: resume an interrupted run.
    fovs : str or os.PathLike, optional
        Folder of field-of-view masks, paired with the inputs by name as
        ``fastseg segment --fov`` does; default: estimated from each image.
    threshold : float, optional
        Mask threshold (default: the model's).
    n_workers, threads_per_worker : int, optional
        Layout of the local cluster (client None only). Default: one
        single-threaded worker per core; each worker runs its kernels on
        ``threads_per_worker`` threads, one segmentation at a time.
    progress : bool, optional
        A progress bar over the files (default: when stderr is a terminal).
    **predict_kwargs
        Passed to ``Segmenter.predict_proba`` (e.g. ``tile``).

    Returns
    -------
    ManyReport
        One :class:`fastseg._files.segment_file.FileReport` per input, in order
        (``status`` "done", "skipped" or "failed" with its ``error``), with
        ``.done``, ``.skipped``, ``.failed``, ``.summary()`` and ``.report``, the path
        of the folder's ``report.html`` (every record in the folder, this run's and
        earlier ones'); scans also add their rows to the folder's ``volumes.csv``.

    Raises
    ------
    fastseg.errors.MissingDependencyError
        Dask is not installed (the message says what to install); an ``ImportError``.
    FileNotFoundError, ValueError, TypeError
        A missing or unreadable model file, no inputs, two inputs with one stem, a
        missing ``fovs`` folder. A bad input *file* is not raised: it is reported
        as failed, with its reason, and the other files finish.
    """
    require("segment_many")
    from fastseg.distributed import _many

    return _many.segment_many(model, inputs, out, client, skip_existing, fovs=fovs,
                              threshold=threshold, n_workers=n_workers,
                              threads_per_worker=threads_per_worker, progress=progress,
                              **predict_kwargs)


def segment_large(model, image, client=None, chunks=1024, *, fov=None, out=None,
                  patch_size=None, overwrite=False, n_workers=None, threads_per_worker=None,
                  affine=None, **segment_kwargs):
    """Segment one image or volume too large for one process, chunk by chunk, as a dask
    array.

    Each chunk runs :func:`fastseg.segment` with the margin of neighbouring pixels
    its patches need (``map_overlap``, ``K // 2`` before and ``K - 1 - K // 2``
    after on each axis, K the patch's extent on that axis), so the result equals
    ``fastseg.segment(model, image, fov)`` bit for bit, wherever the chunk
    borders fall. A volume network (one that records a volume kind's cutter, as a
    volume :class:`~fastseg.Segmenter`'s does) takes a (D, H, W) volume and needs a
    margin only along the axes its kind's patch spans.

    Parameters
    ----------
    model : fastseg.nn.Module, fastseg.Segmenter or str
        The patch network (a segmenter's network and patch size; a model file).
        Like :func:`fastseg.segment`, no preprocessing or calibration is applied
        (a volume segmenter's z-score is a statistic of the whole scan: apply
        :func:`fastseg.data.normalize_volume` first when the model was trained
        with it).
    image : array_like or dask.array.Array, (H, W), (C, H, W) or (D, H, W)
        The network input (e.g. from :func:`fastseg.data.preprocess`); NumPy,
        dask, zarr or any array with ``shape``/``dtype`` and slicing.
    client : distributed.Client or str, optional
        Where to compute when writing `out` (None: a local cluster of processes,
        shut down afterwards). With `out` None nothing is computed; a client given
        then only gets its workers' thread settings.
    chunks : int or (int, int) or (int, int, int)
        Chunk side(s) in pixels (voxels); a chunk smaller than the patch is merged
        with its neighbour. Memory per task is about that of ``fastseg.segment`` on
        a (chunk + K)**2 image (**3 volume).
    fov : array_like of bool, (H, W) or (D, H, W), optional
        Field of view, as in :func:`fastseg.segment`.
    out : str or os.PathLike, optional
        A zarr store to write the probability map to, chunk by chunk, each chunk
        by the worker that computed it.
    patch_size : int, optional
        Default: the segmenter's, or inferred from the network.
    overwrite : bool
        Replace an existing `out`.
    n_workers, threads_per_worker : int, optional
        The local cluster's layout (client None and `out` given).
    affine : array_like (4, 4), optional
        Volumes: the scan's voxel-to-world matrix. The scan is then read whole,
        conformed to the model's grid (RAS+ order; the segmenter's voxel size, or 1 mm
        for a bare network: :func:`fastseg.data.conform`), segmented chunk by chunk
        there, and the map brought back onto the scan's own grid (one task once the
        chunks are done) -- what ``fastseg.segment(model, image, affine=affine)`` gives.
    **segment_kwargs
        Passed to :func:`fastseg.segment` (e.g. ``tile``).

    Returns
    -------
    dask.array.Array, (H, W) or (D, H, W) float32
        Lazy when `out` is None (compute it on any scheduler; each process loads
        the model once and runs one chunk at a time on its kernel threads);
        otherwise the array read back from `out`.

    Raises
    ------
    fastseg.errors.MissingDependencyError
        Dask is not installed (the message says what to install); an ``ImportError``.
    ValueError, TypeError
        A wrong rank, channel count, fov shape or chunk size, a network that cannot
        run densely; a NaN in the image when a chunk holding it is computed.
    FileExistsError
        `out` exists and `overwrite` is False.
    """
    require("segment_large")
    from fastseg.distributed import _large

    return _large.segment_large(model, image, client, chunks, fov=fov, out=out,
                                patch_size=patch_size, overwrite=overwrite,
                                n_workers=n_workers, threads_per_worker=threads_per_worker,
                                affine=affine, **segment_kwargs)
