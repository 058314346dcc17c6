"""Pickle-free, versioned files: models (:func:`save`/:func:`load`) and named arrays.

One file format serves models, training checkpoints and anything else that is
"some JSON plus some arrays": a zip archive holding

* ``header.json``: ``{"format": <kind>, "version": <int>, "fastseg_version": ...,
  "arrays": [<name>, ...], "meta": <JSON>}``
* ``arrays/00000.npy``, ``arrays/00001.npy``, ...: the arrays in the order of
  ``"arrays"``, written with ``allow_pickle=False``.

Files are written atomically (a temporary file in the same directory, then
:func:`os.replace`), so a crash never leaves half a file under the real name.
Reading never runs anything from the file: arrays are read with
``allow_pickle=False`` and a model's architecture may name only the
built-in :mod:`fastseg.nn` classes of a whitelist.

Model files (format ``"fastseg-model"``): version 1 holds ``"architecture"`` in
its meta; version 2 may add ``"fov_diameter"``, the field-of-view diameter in
pixels of the images the model was trained on (``model.fov_diameter``, which
:func:`fastseg.segment` scales photos to); version 3 may add ``"cutter"``, the
patch cutter of a volume network (``model.cutter``: its kind, patch size and
options, :meth:`fastseg.data.PatchCutter.config`), which tells
:func:`fastseg.segment` how to segment a volume. Every version is read.
"""
from __future__ import annotations

import io
import json
import math
import os
import zipfile
from collections import OrderedDict

import numpy as np

from fastseg import nn
from fastseg._atomic import atomic_write
from fastseg.errors import InvalidTypeError, InvalidValueError

__all__ = ["save", "load", "save_arrays", "load_arrays", "save_tree", "load_tree",
           "describe", "build", "model_meta", "apply_model_meta", "MODEL_FORMAT",
           "MODEL_VERSION"]

MODEL_FORMAT = "fastseg-model"
#: The model-file version written; every version up to it is read.
MODEL_VERSION = 3
_HEADER = "header.json"
_MAX_DEPTH = 64

# The only classes a model file may name.
_WHITELIST = {
    "Sequential": nn.Sequential, "ModuleList": nn.ModuleList, "Parallel": nn.Parallel,
    "Conv2d": nn.Conv2d, "Linear": nn.Linear, "ReLU": nn.ReLU, "Tanh": nn.Tanh,
    "Sigmoid": nn.Sigmoid, "XSin": nn.XSin, "MaxPool2d": nn.MaxPool2d, "Dropout": nn.Dropout,
    "Flatten": nn.Flatten, "PixelLogits": nn.PixelLogits,
    "Conv3d": nn.Conv3d, "MaxPool3d": nn.MaxPool3d,
}


def _fastseg_version() -> str:
    from fastseg._version import __version__

    return __version__


class _Refused(ValueError):
    """Raised inside a reader; re-raised as ValueError naming the file."""


# ---- writing ----------------------------------------------------------------------


def save_arrays(path, arrays, meta=None, *, format: str = "fastseg-arrays",
                version: int = 1) -> None:
    """Write named arrays and JSON metadata to `path`, atomically.

    Parameters
    ----------
    path : str or os.PathLike
    arrays : mapping of str to ndarray
        Numeric or boolean arrays (object arrays are refused).
    meta : JSON-serialisable, optional
    format : str
        The kind of file, checked again by :func:`load_arrays`.
    version : int
        The version of that kind.
    """
    names = [str(name) for name in arrays]
    values = [np.asarray(a) for a in arrays.values()]
    for name, a in zip(names, values, strict=True):
        if a.dtype.hasobject or a.dtype.kind not in "biufc":
            raise InvalidTypeError(f"save_arrays: array {name!r} has dtype {a.dtype}; only numeric "
                                   "and boolean arrays can be stored without pickle")
    header = {"format": format, "version": int(version), "fastseg_version": _fastseg_version(),
              "arrays": names, "meta": meta}
    text = json.dumps(header)  # fails here, before any file is touched

    def write(f):
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            zf.writestr(_HEADER, text)
            for i, a in enumerate(values):
                with zf.open(f"arrays/{i:05d}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.ascontiguousarray(a),
                                              allow_pickle=False)

    atomic_write(path, write)


# ---- reading ------------------------------------------------------------------------


def _sniff(path: str) -> None:
    """Refuse what is plainly not a fastseg file, with a reason a user understands."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except IsADirectoryError:
        raise _Refused("it is a directory") from None
    if not head:
        raise _Refused("the file is empty")
    if head[:1] == b"\x80" or head[:1] in (b"(", b"]", b"}"):
        raise _Refused("it looks like a pickle; fastseg never loads pickled data")
    if head.startswith(b"\x89PNG"):
        raise _Refused("it is a PNG image, not a fastseg file")
    if not head.startswith(b"PK"):
        raise _Refused("it is not a fastseg file (not a zip archive)")


def _read_header(zf: zipfile.ZipFile, format: str | None, max_version: int) -> dict:
    try:
        raw = zf.read(_HEADER)
    except KeyError:
        raise _Refused(f"it is a zip archive but not a fastseg file (no {_HEADER})") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Refused(f"its {_HEADER} is not valid JSON ({exc})") from None
    if not isinstance(header, dict) or not isinstance(header.get("format"), str):
        raise _Refused(f"its {_HEADER} has no format field")
    if format is not None and header["format"] != format:
        raise _Refused(f"it holds a {header['format']!r}, expected a {format!r}")
    version = header.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _Refused(f"invalid format version {version!r}")
    if version > max_version:
        raise _Refused(f"format version {version} is newer than this fastseg reads "
                       f"({max_version}); upgrade fastseg")
    names = header.get("arrays")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _Refused(f"its {_HEADER} has no valid list of arrays")
    return header


def _read_array(zf: zipfile.ZipFile, member: str) -> np.ndarray:
    try:
        data = zf.read(member)
    except KeyError:
        raise _Refused(f"the array member {member} is missing (truncated file?)") from None
    buf = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(buf)
        del version
        buf.seek(0)
        return np.lib.format.read_array(buf, allow_pickle=False)
    except ValueError as exc:
        raise _Refused(f"{member} is not a plain .npy array ({exc})") from None


def load_arrays(path, *, format: str | None = None, max_version: int = 1):
    """Read a file written by :func:`save_arrays`.

    Parameters
    ----------
    path : str or os.PathLike
    format : str, optional
        The kind expected (None accepts any).
    max_version : int
        The newest version of that kind the caller understands.

    Returns
    -------
    header : dict
        With ``"format"``, ``"version"`` and ``"meta"`` (the saved metadata).
    arrays : dict of str to ndarray

    Raises
    ------
    FileNotFoundError
        If `path` does not exist.
    ValueError
        For an empty, truncated, foreign, pickled or too new file; the message
        names the file.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such file: {path!r}")
    try:
        _sniff(path)
        with zipfile.ZipFile(path) as zf:
            header = _read_header(zf, format, max_version)
            arrays = {name: _read_array(zf, f"arrays/{i:05d}.npy")
                      for i, name in enumerate(header["arrays"])}
    except _Refused as exc:
        raise InvalidValueError(f"cannot load {path!r}: {exc}") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError,
            NotImplementedError) as exc:
        raise InvalidValueError(f"cannot load {path!r}: damaged or truncated archive "
                                f"({type(exc).__name__}: {exc})") from None
    return header, arrays


# ---- nested structures (checkpoints) ------------------------------------------------------


def _pack(obj, arrays: dict):
    if isinstance(obj, np.ndarray):
        name = f"a{len(arrays)}"
        arrays[name] = obj
        return {"__ndarray__": name}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _pack(val, arrays) for k, val in obj.items()}
        return {"__items__": [[_pack(k, arrays), _pack(val, arrays)] for k, val in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_pack(val, arrays) for val in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise InvalidTypeError(f"save_tree: cannot store a {type(obj).__name__} without pickle")


def _unpack(obj, arrays: dict):
    if isinstance(obj, dict):
        if set(obj) == {"__ndarray__"}:
            try:
                return arrays[obj["__ndarray__"]]
            except (KeyError, TypeError):
                raise _Refused(f"missing array {obj['__ndarray__']!r}") from None
        if set(obj) == {"__items__"}:
            return {_freeze(_unpack(k, arrays)): _unpack(val, arrays)
                    for k, val in obj["__items__"]}
        return {k: _unpack(val, arrays) for k, val in obj.items()}
    if isinstance(obj, list):
        return [_unpack(val, arrays) for val in obj]
    return obj


def _freeze(key):
    return tuple(key) if isinstance(key, list) else key


def save_tree(path, tree, *, format: str, version: int = 1) -> None:
    """Save a nested structure of dicts, lists, numbers, strings and arrays.

    Arrays become ``.npy`` members, the rest JSON (tuples come back as lists,
    dict keys that are not strings are kept).
    """
    arrays: dict = {}
    meta = _pack(tree, arrays)
    save_arrays(path, arrays, meta, format=format, version=version)


def load_tree(path, *, format: str, max_version: int = 1):
    """Read what :func:`save_tree` wrote; returns ``(tree, version)``."""
    header, arrays = load_arrays(path, format=format, max_version=max_version)
    try:
        return _unpack(header.get("meta"), arrays), header["version"]
    except (_Refused, TypeError, ValueError) as exc:
        raise InvalidValueError(f"cannot load {os.fspath(path)!r}: {exc}") from None


# ---- models -----------------------------------------------------------------------------


def describe(module: nn.Module) -> dict:
    """The architecture of `module` as JSON: class names and constructor arguments.

    Raises
    ------
    ValueError
        For a module class outside the whitelist of built-in ``fastseg.nn`` layers.
    """
    name = type(module).__name__
    if _WHITELIST.get(name) is not type(module):
        raise InvalidValueError(f"fastseg.save: cannot describe a {type(module).__qualname__}; "
                                f"only the built-in layers {sorted(_WHITELIST)} can be saved as "
                                "a model (save its state_dict() with fastseg.io.save_arrays "
                                "instead)")
    if isinstance(module, nn.Sequential):
        return {"class": name,
                "children": [[key, describe(child)] for key, child in module.named_children()]}
    if isinstance(module, (nn.Parallel, nn.ModuleList)):
        children = module.branches if isinstance(module, nn.Parallel) else module
        return {"class": name, "children": [describe(child) for child in children]}
    return {"class": name, "args": module.config()}


def _plain_arg(value) -> bool:
    """A constructor argument a model file may hold: a number, string, bool or None,
    or a short list of ints (a 3-D layer's kernel size, stride, padding)."""
    if isinstance(value, list):
        return len(value) <= 8 and all(isinstance(i, int) and not isinstance(i, bool)
                                       for i in value)
    return isinstance(value, (int, float, str, bool, type(None)))


def build(description, _depth: int = 0) -> nn.Module:
    """Construct the module that :func:`describe` described (whitelisted classes only).

    Raises
    ------
    ValueError
        For anything that is not a valid description.
    """
    if _depth > _MAX_DEPTH:
        raise InvalidValueError("architecture: nested too deeply")
    if not isinstance(description, dict) or not isinstance(description.get("class"), str):
        raise InvalidValueError(f"architecture: expected {{'class': ...}}, got {description!r:.80}")
    name = description["class"]
    cls = _WHITELIST.get(name)
    if cls is None:
        raise InvalidValueError(f"architecture: unknown class {name!r}; allowed: "
                                f"{sorted(_WHITELIST)}")
    children = description.get("children")
    if cls is nn.Sequential:
        if not isinstance(children, list) or not all(
            isinstance(c, list) and len(c) == 2 and isinstance(c[0], str) for c in children
        ):
            raise InvalidValueError("architecture: Sequential needs a list of [name, child] pairs")
        return nn.Sequential(OrderedDict((key, build(child, _depth + 1))
                                         for key, child in children))
    if cls in (nn.Parallel, nn.ModuleList):
        if not isinstance(children, list):
            raise InvalidValueError(f"architecture: {name} needs a list of children")
        built = [build(child, _depth + 1) for child in children]
        return nn.Parallel(*built) if cls is nn.Parallel else nn.ModuleList(built)
    args = description.get("args", {})
    if not isinstance(args, dict) or not all(_plain_arg(val) for val in args.values()):
        raise InvalidValueError(f"architecture: {name} needs a dict of plain constructor arguments")
    try:
        return cls(**args)
    except (TypeError, ValueError) as exc:
        raise InvalidValueError(f"architecture: cannot build {name}(**{args}): {exc}") from None


def model_meta(model: nn.Module) -> dict:
    """The meta of a model file: the architecture and, when the model has them, its
    ``fov_diameter`` and its volume ``cutter``."""
    meta = {"architecture": describe(model)}
    diameter = getattr(model, "fov_diameter", None)
    if diameter is not None:
        meta["fov_diameter"] = _check_diameter(diameter)
    cutter = getattr(model, "cutter", None)
    if cutter is not None:
        meta["cutter"] = _cutter_config(cutter)
    return meta


def _cutter_config(cutter) -> dict:
    from fastseg.data.volume_patches import PatchCutter

    if not isinstance(cutter, PatchCutter):
        raise InvalidTypeError(f"model.cutter: expected a fastseg.data.PatchCutter, got "
                               f"{type(cutter).__name__}")
    return cutter.config()


def _cutter_from(config):
    from fastseg.data.volume_patches import make_cutter

    if not isinstance(config, dict) or not all(_plain_arg(v) for v in config.values()):
        raise InvalidValueError(f"cutter: expected a dict of plain values, got {config!r:.80}")
    try:
        return make_cutter(**config)
    except (TypeError, ValueError) as exc:
        raise InvalidValueError(f"cutter: cannot rebuild {config!r:.80}: {exc}") from None


def _check_diameter(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not (math.isfinite(value) and value > 0):
        raise InvalidValueError(f"fov_diameter: expected a positive number of pixels, got "
                                f"{value!r}")
    return float(value)


def apply_model_meta(model: nn.Module, meta: dict) -> nn.Module:
    """Set what the meta of a model file records on `model` (its ``fov_diameter`` and
    ``cutter``)."""
    if meta.get("fov_diameter") is not None:
        model.fov_diameter = _check_diameter(meta["fov_diameter"])
    if meta.get("cutter") is not None:
        model.cutter = _cutter_from(meta["cutter"])
    return model


def save(model: nn.Module, path) -> None:
    """Save `model` (architecture and weights) to `path`, atomically, without pickle.

    Parameters
    ----------
    model : fastseg.nn.Module
        Built only from the built-in layers (what :mod:`fastseg.models` returns).
        Its ``fov_diameter`` and ``cutter`` attributes, when set, are saved too.
    path : str or os.PathLike
        Conventionally ``*.fseg``.
    """
    save_arrays(path, model.state_dict(), model_meta(model), format=MODEL_FORMAT,
                version=MODEL_VERSION)


def load(path) -> nn.Module:
    """Load a model saved by :func:`save`; it comes back in eval mode.

    Raises
    ------
    FileNotFoundError
        If `path` does not exist.
    ValueError
        For an empty, truncated, foreign, pickled, too-new or otherwise invalid
        file, naming it. Nothing in the file is ever executed.
    """
    header, arrays = load_arrays(path, format=MODEL_FORMAT, max_version=MODEL_VERSION)
    try:
        meta = header.get("meta")
        if not isinstance(meta, dict) or "architecture" not in meta:
            raise InvalidValueError("no architecture in the header")
        model = build(meta["architecture"])
        model.load_state_dict(arrays)
        apply_model_meta(model, meta)
    except ValueError as exc:
        raise InvalidValueError(f"cannot load {os.fspath(path)!r}: {exc}") from None
    return model.eval()
