"""The work of ``fastseg segment`` on one input file, shared by the command's sequential
loop and the Dask workers of :mod:`fastseg.distributed`, so both write the same files.

:func:`segment_file` reads the input, segments it and writes its outputs (named by
:func:`fastseg._files.naming.output_paths`), each atomically; the kind of input
(:func:`fastseg._files.naming.input_kind`) picks the work.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fastseg import viz
from fastseg._files import naming
from fastseg.data import read_image
from fastseg.errors import InvalidValueError
from fastseg.report.facts import HIPPOCAMPUS_LABELS, mask_facts


@dataclass
class FileReport:
    """What became of one input file.

    Attributes
    ----------
    path : str
        The input file.
    status : {"done", "skipped", "failed"}
        ``"skipped"``: its outputs existed already (``skip_existing``).
    outputs : tuple of str
        The files written (``done`` only).
    shape : tuple of int, optional
        (H, W) of the image, (D, H, W) of a volume.
    foreground : int, optional
        Pixels (voxels) in the mask: vessel pixels, structure voxels.
    fov_pixels : int, optional
        Pixels in the field of view (voxels of the volume).
    seconds : float
        Time spent on the file, reading and writing included.
    error : str, optional
        Why it failed (``failed`` only).
    worker : str, optional
        The Dask worker that did it (None in the sequential command).
    volumes : dict, optional
        Volumes: ``{"left": mm³, "right": mm³, "total": mm³}`` of the label map.
    facts : dict, optional
        :func:`fastseg.report.mask_facts` of the mask written (for the run's report).
    pictures : tuple of (str, str), optional
        ``(label, path)`` of the pictures to show in the report.
    fov_estimated : bool, optional
        Photos: no FOV file was given, so the FOV was estimated from the photo.
    """

    path: str
    status: str
    outputs: tuple = ()
    shape: tuple | None = None
    foreground: int | None = None
    fov_pixels: int | None = None
    seconds: float = 0.0
    error: str | None = None
    worker: str | None = None
    volumes: dict | None = None
    facts: dict | None = None
    pictures: tuple = ()
    fov_estimated: bool | None = None

    @property
    def name(self) -> str:
        return Path(self.path).name

    def line(self) -> str:
        """One line for the user: what was written, or why not."""
        if self.status == "skipped":
            return f"{self.name}: skipped (its outputs exist)"
        if self.status == "failed":
            return f"{self.name}: failed: {self.error}"
        stem = os.path.join(os.path.dirname(self.outputs[0]), naming.stem(self.path))
        share = self.foreground / max(self.fov_pixels, 1)
        if len(self.shape) == 3:
            v = self.volumes or {}
            return (f"{self.name}: {'x'.join(map(str, self.shape))} voxels, hippocampus "
                    f"left {v.get('left', 0):.0f} mm3, right {v.get('right', 0):.0f} mm3 -> "
                    f"{stem}_{{prob,mask}}.nii.gz, {stem}_{{left,right}}.png")
        h, w = self.shape
        return (f"{self.name}: {w}x{h}, {self.foreground} vessel pixels "
                f"({share:.1%} of the FOV) -> "
                f"{stem}_{{{','.join(naming.OUTPUT_KINDS)}}}.png")


def _network_input(image, channels):
    """The image in the layout the segmenter's preprocessing needs."""
    if channels == "rgb" and image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)  # greyscale photo, colour model
    return image


def fov_file(path, fovs):
    """The FOV file of input `path` in ``fovs`` (``{key: file}`` of a ``--fov`` folder).

    None when there is no ``--fov`` folder (the FOV is then estimated); a folder
    without a match for `path` is an error, never a silent estimate.
    """
    if fovs is None:
        return None
    if naming.input_kind(path) == "volume":
        raise InvalidValueError(f"{Path(path).name}: --fov is for photos; a volume is segmented "
                                "whole")
    match = fovs.get(naming.key(path))
    if match is None:
        raise InvalidValueError(f"no FOV file for {Path(path).name} in the --fov folder "
                                f"(expected a name like {naming.key(path)}_mask.png)")
    return match


def _fov_for(path, image, fov_path):
    if fov_path is None:
        return naming.estimate_fov(image)
    return naming.read_fov(fov_path, image.shape[:2], f"image {path.name}")


def outputs_exist(out, path) -> bool:
    """Whether input `path` is done in folder `out` (what resuming skips): every output
    there, and its record saying so. Outputs without a "done" record are those of a run
    killed between its last output and the record; the input is segmented again, so that
    the folder ends as an uninterrupted run leaves it (a record with its numbers)."""
    from fastseg.report.records import read_record, record_path

    if not all(p.is_file() for p in naming.output_paths(out, path).values()):
        return False
    try:
        return read_record(record_path(out, naming.stem(path)))["status"] == "done"
    except InvalidValueError:  # none, or unreadable
        return False


def _segment_image(seg, path, out, fov_path, threshold, predict_kwargs):
    _check_model_takes(seg, "image")
    threshold = seg.threshold if threshold is None else threshold
    image = read_image(path)
    fov = _fov_for(path, image, fov_path)
    prob = seg.predict_proba(_network_input(image, seg.channels), fov, progress=None,
                             **predict_kwargs)
    mask = (prob >= threshold) & fov
    targets = naming.output_paths(out, path)
    pictures = {"prob": lambda: viz.probability_image(prob), "mask": lambda: viz.mask_image(mask),
                "overlay": lambda: viz.overlay_mask(image, mask)}
    for kind in naming.OUTPUT_KINDS:  # one picture in memory at a time
        viz.save_image(targets[kind], pictures[kind]())  # atomic: never half a file
    return FileReport(str(path), "done", outputs=tuple(str(targets[k]) for k in targets),
                      shape=image.shape[:2], foreground=int(mask.sum()),
                      fov_pixels=int(fov.sum()), facts=mask_facts(mask, fov),
                      pictures=(("overlay", str(targets["overlay"])),),
                      fov_estimated=fov_path is None)


def _check_model_takes(seg, what):
    """An InvalidValueError when the segmenter segments the other kind of input than `what`."""
    kind = seg.resolved_kind()
    if (kind == "image") != (what == "image"):
        takes = "2-D images" if kind == "image" else f"3-D volumes ({kind} kind)"
        raise InvalidValueError(f"the model segments {takes}, not {what}s")


def _segment_volume(seg, path, out, fov_path, threshold, predict_kwargs):
    from fastseg.data import load_nifti, save_nifti
    from fastseg.postprocess import side_volumes

    _check_model_takes(seg, "volume")
    scan = load_nifti(path)
    # The scan with its affine: conformed to the model's grid, the maps brought back.
    prob, labels = seg.predict_maps(scan, threshold=threshold, progress=None, **predict_kwargs)
    targets = naming.output_paths(out, path)
    save_nifti(targets["prob"], prob.astype(np.float32), like=scan)  # each atomic
    save_nifti(targets["mask"], labels, like=scan)
    pictures = viz.hippocampus_pictures(scan.array, labels, scan.affine)
    for side in ("left", "right"):
        viz.save_image(targets[side], pictures[side])
    return FileReport(str(path), "done", outputs=tuple(str(t) for t in targets.values()),
                      shape=scan.shape, foreground=int((labels > 0).sum()),
                      fov_pixels=int(labels.size), volumes=side_volumes(labels, scan.affine),
                      facts=mask_facts(labels, labels=HIPPOCAMPUS_LABELS),
                      pictures=(("left", str(targets["left"])), ("right", str(targets["right"]))))


#: The per-file work for each kind of input (:func:`fastseg._files.naming.input_kind`).
_SEGMENT_BY_KIND = {"image": _segment_image, "volume": _segment_volume}


def segment_file(seg, path, out, *, fov=None, threshold=None, **predict_kwargs) -> FileReport:
    """Segment one input file and write its outputs into folder `out`, atomically.

    Parameters
    ----------
    seg : fastseg.Segmenter
        A fitted segmenter.
    path : str or os.PathLike
        The input file; its kind (:func:`naming.input_kind`) picks the work.
    out : str or os.PathLike
        An existing folder; the outputs are named by :func:`naming.output_paths`.
    fov : str or os.PathLike, optional
        Its FOV file (see :func:`fov_file`); None estimates the FOV from the image.
    threshold : float, optional
        Mask threshold; default the segmenter's (for volumes
        ``seg.decision_threshold()``, then its ``keep_largest`` components).
    **predict_kwargs
        Passed to ``seg.predict_proba`` (e.g. ``tile``).

    Returns
    -------
    FileReport
        With status ``"done"``.

    Raises
    ------
    fastseg.errors.FastsegError, OSError
        An unreadable file, a FOV of another size, ...: nothing is written under
        an output's name (outputs already written for this file stay).
    """
    start = time.perf_counter()
    path = Path(path)
    work = _SEGMENT_BY_KIND[naming.input_kind(path)]
    report = work(seg, path, Path(out), fov, threshold, predict_kwargs)
    report.seconds = time.perf_counter() - start
    return report


def describe_error(exc: BaseException) -> str:
    """One line: the message of an expected failure, the type too for anything else."""
    from fastseg.errors import FastsegError

    message = " ".join(str(exc).split())
    if isinstance(exc, (FastsegError, OSError)) and message:
        return message
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def summary_line(reports, seconds=None) -> str:
    """``"N done, N skipped, N failed"`` (+ the time taken) of a list of FileReports."""
    counts = {s: sum(r.status == s for r in reports) for s in ("done", "skipped", "failed")}
    text = ", ".join(f"{n} {s}" for s, n in counts.items())
    return text if seconds is None else f"{text} in {seconds:.1f} s"
