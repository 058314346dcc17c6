"""Fuzz target: NIfTI files named ``*.nii.gz`` (``fastseg.data.load_nifti``)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _nifti  # noqa: E402

if __name__ == "__main__":
    _nifti.main(".nii.gz")
