"""``fastseg segment MODEL INPUT... --out DIR``: masks, probability maps and overlays.

:func:`segment_file` is the work on one input file; the sequential loop of
:func:`run` and the Dask workers of :mod:`fastseg.distributed` both call it, so
both write the same files.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fastseg import viz
from fastseg._commands import CLIError, files
from fastseg._files import remove_stale_temporaries
from fastseg.data import read_image, read_mask


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
        (H, W) of the image.
    foreground : int, optional
        Pixels in the mask (vessel pixels).
    fov_pixels : int, optional
        Pixels in the field of view.
    seconds : float
        Time spent on the file, reading and writing included.
    error : str, optional
        Why it failed (``failed`` only).
    worker : str, optional
        The Dask worker that did it (None in the sequential command).
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

    @property
    def name(self) -> str:
        return Path(self.path).name

    def line(self) -> str:
        """One line for the user: what was written, or why not."""
        if self.status == "skipped":
            return f"{self.name}: skipped (its outputs exist)"
        if self.status == "failed":
            return f"{self.name}: failed: {self.error}"
        h, w = self.shape
        stem = os.path.join(os.path.dirname(self.outputs[0]), Path(self.path).stem)
        return (f"{self.name}: {w}x{h}, {self.foreground} vessel pixels "
                f"({self.foreground / max(self.fov_pixels, 1):.1%} of the FOV) -> "
                f"{stem}_{{{','.join(files.OUTPUT_KINDS)}}}.png")


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


def fov_file(path, fovs):
    """The FOV file of input `path` in ``fovs`` (``{key: file}`` of a ``--fov`` folder).

    None when there is no ``--fov`` folder (the FOV is then estimated); a folder
    without a match for `path` is an error, never a silent estimate.
    """
    if fovs is None:
        return None
    match = fovs.get(files.key(path))
    if match is None:
        raise CLIError(f"no FOV file for {Path(path).name} in the --fov folder (expected a "
                       f"name like {files.key(path)}_mask.png)")
    return match


def _fov_for(path, image, fov_path):
    if fov_path is None:
        return files.estimate_fov(image)
    fov_path = Path(fov_path)
    fov = read_mask(fov_path)
    if fov.shape != image.shape[:2]:
        raise CLIError(f"FOV {fov_path.name} is {fov.shape[1]}x{fov.shape[0]} but image "
                       f"{path.name} is {image.shape[1]}x{image.shape[0]} (W x H)")
    return fov


def outputs_exist(out, path) -> bool:
    """Whether every output of input `path` is in folder `out` (what resuming skips)."""
    return all(p.is_file() for p in files.output_paths(out, path).values())


def _segment_image(seg, path, out, fov_path, threshold, predict_kwargs):
    image = read_image(path)
    fov = _fov_for(path, image, fov_path)
    prob = seg.predict_proba(_network_input(image, seg.channels), fov, progress=None,
                             **predict_kwargs)
    mask = (prob >= threshold) & fov
    targets = files.output_paths(out, path)
    pictures = {"prob": viz.probability_image(prob), "mask": viz.mask_image(mask),
                "overlay": viz.overlay_mask(image, mask)}
    for kind in files.OUTPUT_KINDS:
        viz.save_image(targets[kind], pictures[kind])  # atomic: never half a file
    return FileReport(str(path), "done", outputs=tuple(str(targets[k]) for k in targets),
                      shape=image.shape[:2], foreground=int(mask.sum()),
                      fov_pixels=int(fov.sum()))


#: The per-file work for each kind of input (:func:`fastseg._commands.files.input_kind`).
_SEGMENT_BY_KIND = {"image": _segment_image}


def segment_file(seg, path, out, *, fov=None, threshold=None, **predict_kwargs) -> FileReport:
    """Segment one input file and write its outputs into folder `out`, atomically.

    Parameters
    ----------
    seg : fastseg.Segmenter
        A fitted segmenter.
    path : str or os.PathLike
        The input file; its kind (:func:`files.input_kind`) picks the work.
    out : str or os.PathLike
        An existing folder; the outputs are named by :func:`files.output_paths`.
    fov : str or os.PathLike, optional
        Its FOV file (see :func:`fov_file`); None estimates the FOV from the image.
    threshold : float, optional
        Mask threshold; default ``seg.threshold``.
    **predict_kwargs
        Passed to ``seg.predict_proba`` (e.g. ``tile``).

    Returns
    -------
    FileReport
        With status ``"done"``.

    Raises
    ------
    CLIError, ValueError, OSError
        An unreadable file, a FOV of another size, ...: nothing is written under
        an output's name (outputs already written for this file stay).
    """
    start = time.perf_counter()
    path = Path(path)
    work = _SEGMENT_BY_KIND[files.input_kind(path)]
    threshold = seg.threshold if threshold is None else threshold
    report = work(seg, path, Path(out), fov, threshold, predict_kwargs)
    report.seconds = time.perf_counter() - start
    return report


def predict_options(args) -> dict:
    """The command's options that go to ``Segmenter.predict_proba``."""
    return {"tile": args.tile}


def summary_line(reports, seconds=None) -> str:
    """``"N done, N skipped, N failed"`` (+ the time taken) of a list of FileReports."""
    counts = {s: sum(r.status == s for r in reports) for s in ("done", "skipped", "failed")}
    text = ", ".join(f"{n} {s}" for s, n in counts.items())
    return text if seconds is None else f"{text} in {seconds:.1f} s"


def _run_distributed(args, inputs, out, options) -> int:
    import sys

    from fastseg import distributed

    report = distributed.segment_many(
        args.model, inputs, out, client=args.scheduler, skip_existing=args.skip_existing,
        fovs=args.fov, threshold=args.threshold, n_workers=args.workers,
        threads_per_worker=args.threads if args.workers else None, progress=None, **options)
    for r in report.failed:
        print(f"fastseg segment: {r.line()}", file=sys.stderr)
    print(f"{report.summary()} ({report.cluster})")
    return 1 if report.failed else 0


def run(args) -> int:
    on_cluster = args.workers is not None or args.scheduler is not None
    if on_cluster:
        from fastseg import distributed

        distributed.require("--workers/--scheduler")
    seg = _load_segmenter(args.model)
    inputs = files.image_files(args.inputs)
    fovs = files.keyed(args.fov, "FOV") if args.fov else None
    out = Path(args.out)
    if files.same_stem(inputs):
        raise CLIError("two inputs have the same file stem; their outputs would collide")
    out.mkdir(parents=True, exist_ok=True)
    options = predict_options(args)
    if on_cluster:
        return _run_distributed(args, inputs, out, options)
    from tqdm.auto import tqdm

    start, reports = time.perf_counter(), []
    for path in tqdm(inputs, desc="images", unit="image", disable=None if len(inputs) > 1
                     else True):
        if args.skip_existing and outputs_exist(out, path):
            reports.append(FileReport(str(path), "skipped"))
        else:
            reports.append(segment_file(seg, path, out, fov=fov_file(path, fovs),
                                        threshold=args.threshold, **options))
        print(reports[-1].line())
    # Temporary files a killed earlier run left behind (never under an output's name).
    remove_stale_temporaries(out, [p.name for path in inputs
                                   for p in files.output_paths(out, path).values()])
    if len(inputs) > 1:
        print(summary_line(reports, time.perf_counter() - start))
    return 0
