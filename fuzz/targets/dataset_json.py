"""Fuzz target: a Medical Segmentation Decathlon ``dataset.json`` (``fastseg.data.load_msd``)
in a task folder that holds two real tiny scans and their label maps."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import Scratch, check, instrumented, run  # noqa: E402

with instrumented("json"):
    from fastseg.data.msd import load_msd

SCRATCH = Scratch("dataset.json")


def _task_folder(root: str) -> None:
    """imagesTr/a, labelsTr/a, imagesTr/b, labelsTr/b (.nii.gz), imagesTs/c.nii: 6x6x6."""
    import nibabel as nib
    import numpy as np

    rng = np.random.default_rng(0)
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    for stem in ("a", "b"):
        scan = rng.integers(0, 1000, (6, 6, 6)).astype(np.int16)
        label = np.zeros((6, 6, 6), np.uint8)
        label[2:4, 2:4, 1:5] = 1
        label[3, 3, 3] = 2
        nib.save(nib.Nifti1Image(scan, np.eye(4)), os.path.join(root, "imagesTr", stem + ".nii.gz"))
        nib.save(nib.Nifti1Image(label, np.eye(4)),
                 os.path.join(root, "labelsTr", stem + ".nii.gz"))
    nib.save(nib.Nifti1Image(np.ones((6, 6, 6), np.float32), np.eye(4)),
             os.path.join(root, "imagesTs", "c.nii"))


_task_folder(SCRATCH.folder)


def _load(split, labels):
    """``load_msd``; a file the JSON lists and that is absent is a FileNotFoundError, as
    documented: a right answer here (the fuzzed file is the JSON, not the list's files)."""
    try:
        load_msd(SCRATCH.folder, split, labels)
    except FileNotFoundError as exc:
        if "listed in" not in str(exc):
            raise


def one_input(data: bytes) -> None:
    SCRATCH.write(data)
    for split, labels in (("training", None), ("test", None), ("training", [2])):
        check(_load, split, labels)


if __name__ == "__main__":
    run(one_input)
