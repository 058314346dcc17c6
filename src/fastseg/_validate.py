"""Argument checks shared by every public function: one check per concept.

Each check names the argument, what it got and what was expected, so a user
can fix the call from the message alone. The errors are fastseg's own
(:mod:`fastseg.errors`): a wrong type is an ``InvalidTypeError`` (a
``TypeError``), a right type with a wrong value an ``InvalidValueError`` (a
``ValueError``).
"""
from __future__ import annotations

import numbers
import operator

import numpy as np

from fastseg.errors import InvalidIndexError, InvalidTypeError, InvalidValueError, NonFiniteError

# Sizes whose element count reaches this cannot be addressed safely by the
# 64-bit index arithmetic of the kernels (products of two such values must
# still fit in int64); no real array comes anywhere near it.
MAX_ELEMENTS = 1 << 48


def as_int(name: str, value, minimum: int | None = None, maximum: int | None = None) -> int:
    """`value` as a Python int in ``[minimum, maximum]`` (either bound optional).

    A value that is not an integer (a float, even 2.0, a bool, a str) is an
    ``InvalidTypeError``; an int out of range an ``InvalidValueError``.
    """
    if isinstance(value, (bool, np.bool_)):
        raise InvalidTypeError(f"{name}: expected an int, got bool {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        kind = type(value).__name__
        raise InvalidTypeError(f"{name}: expected an int, got {kind} {value!r}") from None
    if minimum is not None and value < minimum:
        raise InvalidValueError(f"{name}: must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise InvalidValueError(f"{name}: must be <= {maximum}, got {value}")
    return value


def as_real(name: str, value, minimum: float, maximum: float) -> float:
    """`value` as a Python float in ``[minimum, maximum]``.

    A value that is not a real number (a bool, a str, None) is an
    ``InvalidTypeError``; NaN or a number out of range an ``InvalidValueError``.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InvalidTypeError(f"{name}: expected a number in [{minimum}, {maximum}], got "
                               f"{type(value).__name__} {value!r}")
    if not minimum <= value <= maximum:  # NaN fails both comparisons
        raise InvalidValueError(f"{name}: must lie in [{minimum}, {maximum}], got {value!r}")
    return float(value)


def as_mask(mask, shape, *, name: str = "mask", binary: bool = False) -> np.ndarray:
    """A mask as a bool array of `shape`: the one conversion of masks in fastseg.

    Parameters
    ----------
    mask : array_like
        Bool or numeric, of `shape`.
    shape : tuple of int
        The shape of the image (or volume) the mask belongs to.
    name : str
        The argument's name, for the messages.
    binary : bool
        False: any non-zero value is inside (bool masks, 0/1 labels, 0/255 masks read
        from image files). True: the values must be 0 and 1 (a truth or training mask:
        a label map with other labels is refused, since which label is meant is not
        for fastseg to guess).

    Raises
    ------
    TypeError
        A dtype that is neither bool nor numeric.
    ValueError
        Another shape, NaN, or (`binary`) values other than 0 and 1.
    """
    refuse_device(name, mask)
    arr = np.asarray(mask)
    if arr.dtype.kind not in "biuf":
        raise InvalidTypeError(f"{name}: expected a bool or numeric mask, got dtype "
                               f"{arr.dtype}")
    if arr.shape != tuple(shape):
        raise InvalidValueError(f"{name}: expected shape {tuple(shape)} (that of its image or "
                                f"volume), got {arr.shape}")
    if arr.dtype == np.bool_:
        return arr
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise InvalidValueError(f"{name}: contains NaN; a mask is zero outside and non-zero "
                                "inside")
    if binary and arr.size and not np.isin(arr, (0, 1)).all():
        raise InvalidValueError(f"{name}: expected a binary mask (bool or 0/1); it holds other "
                                "values (threshold it, or select the structure's label, first)")
    return arr != 0


def as_fov(fov, shape, *, name: str = "fov", need_inside: bool = False) -> np.ndarray:
    """A field of view as a bool array of `shape`: the one meaning of a FOV in fastseg.

    Every function that takes a FOV (:func:`fastseg.segment`,
    :func:`fastseg.data.preprocess`, :class:`fastseg.data.PatchSampler`,
    :mod:`fastseg.metrics`, the command line) reads it here, so it means the same
    everywhere:

    - it is an array of the image's shape ``(H, W)`` (the volume's ``(D, H, W)`` for
      3-D data);
    - any non-zero value is inside, zero is outside, so bool masks, 0/1 label images
      and 0/255 masks read from image files all work;
    - NaN is refused (it is neither inside nor outside), as are non-numeric dtypes;
    - ``None`` means the whole image: every pixel is inside.

    Parameters
    ----------
    fov : array_like or None
    shape : tuple of int
        The shape of the image (or volume) the FOV belongs to.
    name : str
        The argument's name, for the messages (e.g. ``"samples[3].fov"``).
    need_inside : bool
        The computation needs at least one pixel inside (metrics, normalisation): an
        empty FOV is then an ``InvalidValueError`` naming `name`.

    Returns
    -------
    numpy.ndarray of bool, of `shape`
    """
    shape = tuple(int(d) for d in shape)
    if fov is None:
        return np.ones(shape, dtype=bool)
    inside = as_mask(fov, shape, name=name)
    if need_inside and not inside.any():
        raise InvalidValueError(f"{name}: is empty (no pixel inside), but at least one is "
                                "needed")
    return inside


def as_square(name: str, value) -> int:
    """A square kernel size: an int, or a pair of equal ints."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or value[0] != value[1]:
            raise InvalidValueError(f"{name}: only square kernels are supported, got "
                                    f"{tuple(value)}")
        value = value[0]
    return as_int(name, value, minimum=1)


def as_triple(name: str, value, minimum: int) -> tuple[int, int, int]:
    """A 3-D size (depth, height, width): an int used for all three axes, or 3 ints;
    each an int (TypeError otherwise) of at least `minimum` (ValueError otherwise)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 3:
            raise InvalidValueError(f"{name}: expected an int or 3 ints (depth, height, width), "
                                    f"got {tuple(value)}")
        return tuple(as_int(name, d, minimum=minimum) for d in value)
    d = as_int(name, value, minimum=minimum)
    return d, d, d


def as_kernel_size(name: str, value, dims: int):
    """A convolution's or pooling's kernel size in `dims` (2 or 3) spatial dimensions:
    in 2-D a square kernel's side (:func:`as_square`), in 3-D a (depth, height, width)
    triple (:func:`as_triple`)."""
    return kernel_size_check(dims)(name, value)


def as_window_step(name: str, value, dims: int, minimum: int):
    """A convolution's or pooling's stride or padding in `dims` (2 or 3) spatial
    dimensions: in 2-D one int for both axes, in 3-D a (depth, height, width) triple
    (:func:`as_triple`)."""
    return window_step_check(dims)(name, value, minimum=minimum)


def kernel_size_check(dims: int):
    """The check :func:`as_kernel_size` applies in `dims` dimensions, ``(name, value)
    -> size``: for a caller that checks on every call (ops' front doors), one call less."""
    return as_square if dims == 2 else _as_kernel_triple


def window_step_check(dims: int):
    """The check :func:`as_window_step` applies in `dims` dimensions, ``(name, value,
    minimum=) -> step``, for a caller that checks on every call."""
    return as_int if dims == 2 else as_triple


def _as_kernel_triple(name: str, value) -> tuple[int, int, int]:
    return as_triple(name, value, minimum=1)


def byte_text(n: int) -> str:
    """A byte count for a message, in decimal units to 3 digits: ``267 kB``, ``108 TB``
    (what a file holds or a header declares, where the order of size is the point)."""
    n = int(n)
    if n < 1000:
        return f"{n} bytes"
    value = float(n)
    for unit in ("kB", "MB", "GB", "TB", "PB", "EB"):
        value /= 1000
        if value < 999.5 or unit == "EB":
            return f"{value:.3g} {unit}"
    raise AssertionError("unreachable")


def check_size(name: str, shape) -> None:
    """Refuse shapes whose element count would overflow the kernels' indexing."""
    total = 1
    for dim in shape:
        total *= int(dim)
    if total >= MAX_ELEMENTS:
        raise InvalidValueError(f"{name}: a result of shape {tuple(shape)} ({total} "
                                "elements) is too large")


def on_device(a) -> bool:
    """Whether `a` is a GPU array (a Numba device array, real or simulated, or anything
    with ``__cuda_array_interface__``); NumPy arrays answer at once."""
    if isinstance(a, np.ndarray):
        return False
    return hasattr(a, "__cuda_array_interface__") or hasattr(a, "copy_to_host")


def refuse_device(name: str, a) -> None:
    """TypeError for a device array handed to a host backend."""
    if on_device(a):
        raise InvalidTypeError(f"{name}: got a CUDA device array {tuple(a.shape)}, but the "
                               "current backend runs on the host; call "
                               "fastseg.set_backend(\"cuda\") (or pass backend=\"cuda\") to "
                               "compute on device arrays, or bring the model back with "
                               "model.to(\"cpu\")")


def as_float32(name: str, a, ndim: int | None = None, layout: str = "") -> np.ndarray:
    """`a` as a C-contiguous float32 ndarray of rank `ndim`.

    Other real dtypes, Fortran order, strided views and read-only arrays are
    converted (copied only when needed); complex, object and string data are
    refused with TypeError, a wrong rank with ValueError.
    """
    if not isinstance(a, np.ndarray):
        refuse_device(name, a)
        try:
            a = np.asarray(a)
        except (TypeError, ValueError) as exc:
            raise InvalidTypeError(f"{name}: expected a float32 array, got "
                                   f"{type(a).__name__}") from exc
    if a.dtype.kind not in "fiub":
        raise InvalidTypeError(f"{name}: expected a float32 array, got dtype {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        what = f" {layout}" if layout else ""
        raise InvalidValueError(f"{name}: expected a {ndim}-D array{what}, got shape {a.shape}")
    return np.ascontiguousarray(a, dtype=np.float32)


def as_labels(name: str, labels, n: int, num_classes: int) -> np.ndarray:
    """Class labels as int64 of length `n`, every one in [0, num_classes)."""
    refuse_device(name, labels)
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise InvalidTypeError(f"{name}: expected integer class labels, got dtype "
                               f"{labels.dtype}")
    if labels.shape != (n,):
        raise InvalidValueError(f"{name}: expected shape ({n},) to match the batch, got "
                                f"{labels.shape}")
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise InvalidIndexError(f"{name}: label {bad} is outside [0, {num_classes})")
    return np.ascontiguousarray(labels, dtype=np.int64)


def check_finite(name: str, a: np.ndarray) -> None:
    """NonFiniteError (an InvalidValueError) if `a` holds a NaN or an infinity."""
    if not np.isfinite(a).all():
        raise non_finite(name)


def non_finite(name: str) -> NonFiniteError:
    """The error for argument `name` holding a NaN or an infinity (for the checks of
    arrays NumPy cannot see, such as device arrays)."""
    return NonFiniteError(f"{name}: contains NaN or infinity")


def as_indices(name: str, indices, shape, limit: int) -> np.ndarray:
    """Integer indices of `shape` as C-contiguous int64, every one in ``[0, limit)``.

    A value outside is an ``InvalidIndexError`` (a ``ValueError`` and an ``IndexError``).
    """
    refuse_device(name, indices)
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise InvalidTypeError(f"{name}: expected integer indices, got dtype {indices.dtype}")
    if indices.shape != tuple(shape):
        raise InvalidValueError(f"{name}: expected shape {tuple(shape)}, got {indices.shape}")
    if indices.size and (indices.min() < 0 or indices.max() >= limit):
        raise InvalidIndexError(f"{name}: values must lie in [0, {limit}), got values in "
                                f"[{indices.min()}, {indices.max()}]")
    return np.ascontiguousarray(indices, dtype=np.int64)


def as_inplace(name: str, a, shape) -> np.ndarray:
    """`a` itself, checked to be a float32 ndarray of `shape` that can be updated in
    place (C-contiguous and writeable): a copy would silently drop the update."""
    refuse_device(name, a)
    if not (isinstance(a, np.ndarray) and a.dtype == np.float32 and a.shape == tuple(shape)):
        raise InvalidTypeError(f"{name}: expected a float32 array of shape {tuple(shape)} to "
                               f"update in place, got {getattr(a, 'dtype', type(a).__name__)} "
                               f"{getattr(a, 'shape', '')}")
    if not (a.flags.c_contiguous and a.flags.writeable):
        raise InvalidValueError(f"{name}: must be C-contiguous and writeable to be updated "
                                "in place")
    return a
