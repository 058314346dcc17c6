"""The `Sample` record shared by every data source (synthetic, DRIVE, image folders)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastseg import _validate
from fastseg.errors import InvalidValueError


@dataclass(frozen=True, eq=False)
class Sample:
    """One fundus image with its vessel annotation and field of view.

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W, 3)`` uint8 RGB image, or ``(H, W)`` uint8 for greyscale sources.
    mask : numpy.ndarray
        ``(H, W)`` bool vessel annotation (the first observer for DRIVE).
    fov : array_like
        ``(H, W)`` field of view: the pixels that hold retina. Metrics and patch
        sampling only look inside it. Read as every FOV in fastseg is
        (:func:`fastseg._validate.as_fov`: non-zero inside, None the whole image) and
        stored as bool.
    name : str
        An identifier, e.g. ``"21_training"`` for DRIVE or the file stem for folders.
    mask2 : numpy.ndarray or None, optional
        ``(H, W)`` bool annotation by a second observer (DRIVE test split), else None.

    Notes
    -----
    The record is frozen (attributes cannot be rebound) and compares by identity
    (``eq=False``), because element-wise ``==`` on arrays has no single truth value.
    The arrays themselves stay writeable (read-only buffers break Cython-based
    libraries such as scikit-image), so treat them as read-only by convention.
    """

    image: np.ndarray
    mask: np.ndarray
    fov: np.ndarray
    name: str
    mask2: np.ndarray | None = None

    def __post_init__(self) -> None:
        image = np.asarray(self.image)
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (
            image.ndim == 3 and image.shape[2] != 3
        ):
            raise InvalidValueError(
                f"image must be (H, W, 3) or (H, W) uint8, got shape {image.shape} "
                f"dtype {image.dtype}"
            )
        hw = image.shape[:2]
        arrays = {"image": image}
        # The FOV in fastseg's one meaning (non-zero inside), stored as bool.
        arrays["fov"] = _validate.as_fov(self.fov, hw)
        for field in ("mask", "mask2"):
            value = getattr(self, field)
            if value is None and field == "mask2":
                continue
            arr = np.asarray(value)
            if arr.dtype != np.bool_ or arr.shape != hw:
                raise InvalidValueError(
                    f"{field} must be a bool array of shape {hw}, got shape {arr.shape} "
                    f"dtype {arr.dtype}"
                )
            arrays[field] = arr
        for field, arr in arrays.items():
            object.__setattr__(self, field, arr)
        object.__setattr__(self, "name", str(self.name))

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)`` of the image."""
        return self.image.shape[:2]

    def __repr__(self) -> str:
        kind = "RGB" if self.image.ndim == 3 else "grey"
        extra = ", mask2" if self.mask2 is not None else ""
        return f"Sample(name={self.name!r}, shape={self.shape}, {kind}{extra})"
