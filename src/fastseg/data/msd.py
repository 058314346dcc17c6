"""Loaders for labelled NIfTI scans: the Medical Segmentation Decathlon layout and plain
folders of images and labels paired by name."""

from __future__ import annotations

import json
import os
import reprlib
from pathlib import Path, PurePosixPath

import numpy as np

from fastseg import _validate
from fastseg.errors import InvalidValueError

from .folder import _pair
from .nifti import load_nifti, nifti_stem
from .volume import Volume, VolumeSample

__all__ = ["load_msd", "load_nifti_folder", "labelled_sample"]

_MSD_SPLITS = {"training": "training", "train": "training", "test": "test"}


def _as_label_set(labels):
    if labels is None:
        return None
    values = [labels] if isinstance(labels, (int, np.integer)) else list(labels)
    if not values or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                             and v > 0 for v in values):
        raise InvalidValueError(f"labels must be positive ints (the foreground label values), "
                                f"got {labels!r}")
    return sorted({int(v) for v in values})


def labelled_sample(image: Volume, label: Volume, labels=None) -> VolumeSample:
    """Check that a scan and its label map belong together and make the sample.

    Parameters
    ----------
    image, label : Volume
        As read by :func:`~fastseg.data.load_nifti`.
    labels : int or sequence of int, optional
        Label values that count as the structure; None: every non-zero value.

    Raises
    ------
    ValueError
        Shapes or affines that disagree (beyond 1e-3 mm), label values that are not
        whole numbers, or a label with no structure voxel; each names both files.
    """
    wanted = _as_label_set(labels)
    pair = f"image {image.name!r} and label {label.name!r}"
    if image.shape != label.shape:
        raise InvalidValueError(f"{pair} differ in shape: {image.shape} vs {label.shape}")
    if not np.allclose(image.affine, label.affine, rtol=0, atol=1e-3):
        worst = float(np.abs(image.affine - label.affine).max())
        raise InvalidValueError(f"{pair} are in different spaces: their affines differ by up "
                                f"to {worst:.4g} (mm or direction cosines)")
    values = label.array
    if not np.array_equal(values, np.round(values)):
        raise InvalidValueError(f"label {label.name!r} holds non-integer values; a label map "
                                "holds whole numbers")
    mask = values > 0 if wanted is None else np.isin(values, wanted)
    if not mask.any():
        which = "non-zero" if wanted is None else f"{wanted}"
        raise InvalidValueError(f"label {label.name!r} is empty: no voxel has a {which} label "
                                "value")
    return VolumeSample(image.array, mask, image.affine, image.spacing, image.name,
                        header=image.header)


#: The largest ``dataset.json`` read: the Decathlon's largest (Task03 Liver, 131 + 70
#: cases) is 30 kB; a list of 100 000 cases would fit.
MAX_DATASET_JSON_BYTES = 16 << 20

_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother = 3, 60, 60


def _shown(value) -> str:
    """A short repr of a value from the file, whatever its size or depth."""
    return _SHOWN.repr(value)


def _read_dataset_json(path: Path):
    """The JSON of a ``dataset.json``, its size checked before it is read."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_DATASET_JSON_BYTES:
            raise InvalidValueError(f"{path}: {_validate.byte_text(size)}, more than the "
                                    f"{_validate.byte_text(MAX_DATASET_JSON_BYTES)} a "
                                    "dataset.json may have")
        raw = f.read(MAX_DATASET_JSON_BYTES + 1)
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, or nested too deeply
        why = "nested too deeply" if isinstance(exc, RecursionError) else \
            " ".join(str(exc).split())[:200]
        raise InvalidValueError(f"{path}: not valid JSON ({why})") from None


def _inside(root: Path, rel: str, what: str) -> Path:
    """``root / rel``, refused if it leaves the task folder: a ``dataset.json`` lists the
    task's own files (``./imagesTr/...``), never an absolute path or one up through
    ``..`` (symbolic links inside the folder are followed, as the user made them)."""
    if "\0" in rel or not rel.strip():
        raise InvalidValueError(f"{what} is not a file path")
    parts = PurePosixPath(rel.replace("\\", "/")).parts
    if PurePosixPath(rel).is_absolute() or os.path.isabs(rel) or ".." in parts:
        raise InvalidValueError(f"{what} leaves the task folder {root}; a dataset.json lists "
                                "paths inside it, like ./imagesTr/case.nii.gz")
    return root / rel


def load_msd(root, split="training", labels=None):
    """Read one task of the Medical Segmentation Decathlon from its original layout.

    Expected files (``Task04_Hippocampus`` for example)::

        <root>/dataset.json          "training": [{"image": "./imagesTr/x.nii.gz",
                                                   "label": "./labelsTr/x.nii.gz"}, ...],
                                     "test": ["./imagesTs/y.nii.gz", ...],
                                     "labels": {"0": "background", "1": ..., ...}
        <root>/imagesTr/, <root>/labelsTr/, <root>/imagesTs/

    Parameters
    ----------
    root : str or Path
        The task folder (the one holding ``dataset.json``).
    split : {"training", "test"}
        ``"train"`` is accepted for ``"training"``. The test split has no labels.
    labels : int or sequence of int, optional
        Label values that make the mask; None: every non-zero label. Task04's labels 1
        (anterior) and 2 (posterior) are both hippocampus, so the default gives the
        whole hippocampus.

    Returns
    -------
    list of VolumeSample or list of Volume
        ``"training"``: samples in ``dataset.json`` order, named after the image file;
        ``"test"``: the scans alone.

    Raises
    ------
    FileNotFoundError
        No ``dataset.json``, or a file it lists is missing (named).
    ValueError
        A malformed ``dataset.json``, a label value it does not declare, or any bad
        scan or pair (see :func:`~fastseg.data.load_nifti` and
        :func:`labelled_sample`).
    """
    if split not in _MSD_SPLITS:
        raise InvalidValueError(f"split must be 'training' or 'test', got {split!r}")
    split = _MSD_SPLITS[split]
    root = Path(root)
    meta_path = root / "dataset.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"not a Medical Segmentation Decathlon task folder: no "
                                f"{meta_path}")
    meta = _read_dataset_json(meta_path)
    entries = meta.get(split) if isinstance(meta, dict) else None
    if not isinstance(entries, list) or not entries:
        raise InvalidValueError(f"{meta_path}: expected a non-empty list under {split!r}")
    declared = meta.get("labels")
    wanted = _as_label_set(labels)
    if wanted is not None and isinstance(declared, dict):
        unknown = [v for v in wanted if str(v) not in declared]
        if unknown:
            raise InvalidValueError(f"labels {unknown} are not declared in {meta_path} (it "
                                    f"declares {sorted(declared)})")

    def resolve(rel, what):
        if not isinstance(rel, str):
            raise InvalidValueError(f"{meta_path}: {what} entries must be file paths, got "
                                    f"{_shown(rel)}")
        path = _inside(root, rel, f"{meta_path}: {what} {_shown(rel)}")
        if not path.is_file():
            raise FileNotFoundError(f"{what} listed in {meta_path} is missing: {path}")
        return path

    if split == "test":
        return [load_nifti(resolve(rel, "test image")) for rel in entries]
    samples = []
    for entry in entries:
        if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
            raise InvalidValueError(f"{meta_path}: training entries must be {{\"image\": ..., "
                                    f"\"label\": ...}}, got {_shown(entry)}")
        image = load_nifti(resolve(entry["image"], "image"))
        label = load_nifti(resolve(entry["label"], "label"))
        if isinstance(declared, dict):
            found = {str(int(v)) for v in np.unique(label.array) if v == int(v)}
            undeclared = sorted(found - set(declared), key=int)
            if undeclared:
                raise InvalidValueError(f"label {label.name!r} holds values {undeclared} that "
                                        f"{meta_path} does not declare")
        samples.append(labelled_sample(image, label, labels))
    return samples


def _nifti_files(directory, what):
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {d}")
    files = sorted(p for p in d.iterdir() if p.is_file() and nifti_stem(p) is not None)
    if not files:
        raise FileNotFoundError(f"no NIfTI files (.nii, .nii.gz) in {d}")
    return files


def load_nifti_folder(images_dir, labels_dir, labels=None):
    """Load scans and their label maps from two folders, paired by file name.

    Pairing rule (that of :func:`~fastseg.data.load_folder`): the scan ``<stem>.nii[.gz]``
    matches the label file whose stem is ``<stem>`` or ``<stem>_<tag>`` /
    ``<stem>-<tag>`` with ``<tag>`` one of :data:`~fastseg.data.MASK_TAGS` (``label``,
    ``seg``, ``mask``, ...), compared case-insensitively; ``.nii`` and ``.nii.gz``
    may be mixed. Every scan needs exactly one label file and every label file a scan.

    Parameters
    ----------
    images_dir, labels_dir : str or Path
    labels : int or sequence of int, optional
        As in :func:`load_msd`.

    Returns
    -------
    list of VolumeSample
        Sorted by scan file name; ``.name`` is the scan's stem.

    Raises
    ------
    FileNotFoundError
        A folder is missing or holds no NIfTI file.
    ValueError
        Unmatched or ambiguous files (named), or a bad scan or pair.
    """
    images = _nifti_files(images_dir, "images")
    found = _pair(images, labels_dir, "label", list_files=_nifti_files, stem_of=nifti_stem)
    return [labelled_sample(load_nifti(p), load_nifti(found[nifti_stem(p).lower()]), labels)
            for p in images]
