"""Pickle-free, versioned files: models (:func:`save`/:func:`load`) and named arrays.

One file format serves models, training checkpoints and anything else that is
"some JSON plus some arrays": a zip archive holding

* ``header.json``: ``{"format": <kind>, "version": <int>, "fastseg_version": ...,
  "arrays": [<name>, ...], "meta": <JSON>}``
* ``arrays/00000.npy``, ``arrays/00001.npy``, ...: the arrays in the order of
  ``"arrays"``, written with ``allow_pickle=False``.

Files are written atomically (a temporary file in the same directory, then
:func:`os.replace`), so a crash never leaves half a file under the real name, and
reproducibly: the same content gives the same bytes, whenever it is saved (the members
carry zip's epoch as their date, not the time of saving).
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

A file is checked before it is believed: nothing is allocated on a size the file
declares until the file is seen to hold it. The zip members must be stored or deflated,
unencrypted, and no larger than the archive can hold (a deflated member inflates at
most :data:`DEFLATE_MAX_RATIO` times); ``header.json`` at most :data:`MAX_HEADER_BYTES`;
every ``.npy`` header's shape and dtype must account for exactly the bytes of its member;
and in a model file, every layer's parameter shapes, as its architecture declares them,
must be those of the arrays stored for it -- all before any array is read or any layer
built (a Linear layer declaring 10**12 inputs is refused by name, not by a failed
allocation).
"""
from __future__ import annotations

import inspect
import json
import math
import os
import reprlib
import tokenize
import zipfile
import zlib
from collections import OrderedDict

import numpy as np

from fastseg import _validate, nn
from fastseg._atomic import atomic_write
from fastseg._shapes import per_axis
from fastseg.errors import InvalidTypeError, InvalidValueError

__all__ = ["save", "load", "save_arrays", "load_arrays", "save_tree", "load_tree",
           "describe", "build", "check_parameter_shapes", "model_meta", "apply_model_meta",
           "MODEL_FORMAT", "MODEL_VERSION", "MAX_HEADER_BYTES", "DEFLATE_MAX_RATIO"]

MODEL_FORMAT = "fastseg-model"
#: The model-file version written; every version up to it is read.
MODEL_VERSION = 3
_HEADER = "header.json"
_MAX_DEPTH = 64
#: Largest ``header.json`` read (an architecture, a segmenter's settings and its history
#: take kilobytes; a checkpoint's nested state more, but nowhere near this).
MAX_HEADER_BYTES = 64 << 20
#: DEFLATE's largest ratio of inflated to deflated bytes (RFC 1951: a 258-byte match per
#: 2 bits at best), which bounds what a deflated member can hold.
DEFLATE_MAX_RATIO = 1032
#: Largest ``.npy`` header text read (NumPy's own default limit).
_MAX_NPY_HEADER = 10000

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


def _entry(name: str) -> zipfile.ZipInfo:
    """A stored member dated 1980-01-01 (zip's epoch), not now: the same model, checkpoint
    or arrays give the same bytes whenever they are saved (a resumed training run ends
    with the files of an uninterrupted one, byte for byte)."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


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
            zf.writestr(_entry(_HEADER), text)
            for i, a in enumerate(values):
                with zf.open(_entry(f"arrays/{i:05d}.npy"), "w", force_zip64=True) as member:
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


def _member(zf: zipfile.ZipFile, name: str, archive_bytes: int,
            max_bytes: int | None = None) -> zipfile.ZipInfo:
    """The entry of member `name`, after checking that the archive can hold what it
    declares: stored or deflated, not encrypted, its size within the archive's."""
    try:
        info = zf.getinfo(name)
    except KeyError:
        if name == _HEADER:
            raise _Refused(f"it is a zip archive but not a fastseg file (no {_HEADER})") \
                from None
        raise _Refused(f"the array member {name} is missing (truncated file?)") from None
    if info.flag_bits & 0x1:
        raise _Refused(f"{name} is encrypted; fastseg files never are")
    if info.compress_type == zipfile.ZIP_STORED:
        holds = info.compress_size
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        holds = info.compress_size * DEFLATE_MAX_RATIO + 64
    else:
        raise _Refused(f"{name} is compressed with method {info.compress_type}; fastseg "
                       "reads stored or deflated members only")
    if info.compress_size > archive_bytes or info.file_size > holds:
        raise _Refused(f"{name} declares {_validate.byte_text(info.file_size)} but the "
                       f"archive holds {_validate.byte_text(archive_bytes)}")
    if max_bytes is not None and info.file_size > max_bytes:
        raise _Refused(f"{name} declares {_validate.byte_text(info.file_size)}, more than the "
                       f"{_validate.byte_text(max_bytes)} such a member may have")
    return info


def _read_header(zf: zipfile.ZipFile, format: str | None, max_version: int,
                 archive_bytes: int) -> dict:
    raw = zf.read(_member(zf, _HEADER, archive_bytes, MAX_HEADER_BYTES))
    try:
        header = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, or nested too deep
        why = "nested too deeply" if isinstance(exc, RecursionError) else \
            " ".join(str(exc).split())[:200]
        raise _Refused(f"its {_HEADER} is not valid JSON ({why})") from None
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


class _Declared:
    """What a ``.npy`` member declares in its header, checked against what it holds."""

    def __init__(self, info: zipfile.ZipInfo, name: str, shape: tuple, dtype: np.dtype):
        self.info, self.name, self.shape, self.dtype = info, name, shape, dtype


def _declared_array(zf: zipfile.ZipFile, member: str, name: str,
                    archive_bytes: int) -> _Declared:
    """Read only the header of `member` (array `name`) and check that its shape and dtype
    account for exactly the bytes the member holds, before the array is allocated."""
    info = _member(zf, member, archive_bytes)
    fmt = np.lib.format
    where = f"{member} (array {name!r})"
    with zf.open(info) as fp:
        try:
            version = fmt.read_magic(fp)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(
                    fp, max_header_size=_MAX_NPY_HEADER)
            elif version == (2, 0):
                shape, fortran, dtype = fmt.read_array_header_2_0(
                    fp, max_header_size=_MAX_NPY_HEADER)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except (ValueError, SyntaxError, RecursionError, EOFError, tokenize.TokenError) as exc:
            # NumPy's own header parser lets TokenError out for unbalanced brackets.
            why = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise _Refused(f"{where} is not a plain .npy array ({why})") from None
        header_bytes = fp.tell()
    del fortran  # the layout does not change the size
    if dtype.hasobject or dtype.names is not None or dtype.subdtype is not None \
            or dtype.kind not in "biufc":
        raise _Refused(f"{where} is not a plain .npy array (dtype {dtype}; fastseg stores "
                       "numbers and booleans only)")
    count = math.prod(shape)
    data_bytes = info.file_size - header_bytes
    if count * dtype.itemsize != data_bytes:
        raise _Refused(f"{where}: its header declares shape {tuple(shape)} {dtype} "
                       f"({_validate.byte_text(count * dtype.itemsize)}) but the member holds "
                       f"{_validate.byte_text(max(data_bytes, 0))} of data")
    return _Declared(info, name, tuple(shape), dtype)


def _read_array(zf: zipfile.ZipFile, declared: _Declared) -> np.ndarray:
    """The array of a member :func:`_declared_array` checked (its size is what it holds)."""
    with zf.open(declared.info) as fp:
        try:
            return np.lib.format.read_array(fp, allow_pickle=False,
                                            max_header_size=_MAX_NPY_HEADER)
        except ValueError as exc:
            raise _Refused(f"{declared.info.filename} is damaged "
                           f"({' '.join(str(exc).split())[:200]})") from None


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
        archive_bytes = os.path.getsize(path)
        with zipfile.ZipFile(path) as zf:
            header = _read_header(zf, format, max_version, archive_bytes)
            declared = [_declared_array(zf, f"arrays/{i:05d}.npy", name, archive_bytes)
                        for i, name in enumerate(header["arrays"])]
            if header["format"] == MODEL_FORMAT and isinstance(header.get("meta"), dict) \
                    and "architecture" in header["meta"]:
                check_parameter_shapes(header["meta"]["architecture"],
                                       {d.name: d.shape for d in declared})
            arrays = {d.name: _read_array(zf, d) for d in declared}
    except _Refused as exc:
        raise InvalidValueError(f"cannot load {path!r}: {exc}") from None
    except InvalidValueError as exc:
        raise InvalidValueError(f"cannot load {path!r}: {exc}") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, zlib.error,
            NotImplementedError) as exc:
        if isinstance(exc, FileNotFoundError | IsADirectoryError | PermissionError):
            raise
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


_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother = 3, 40, 40


def _shown(value) -> str:
    """A short repr of a value from a file, whatever its size or depth."""
    return _SHOWN.repr(value)


#: Names a Sequential child may not take: they are the container's own attributes.
_RESERVED_NAMES = frozenset(dir(nn.Sequential()))


def _child_name(key) -> bool:
    return (isinstance(key, str) and key != "" and "." not in key and key.isprintable()
            and not key.startswith("_") and key not in _RESERVED_NAMES)


def _node(description, depth: int):
    """``(class name, class, [(key, child description)] or None, args or None)`` of one
    node of an architecture, its structure checked (what :func:`build` requires)."""
    if depth > _MAX_DEPTH:
        raise InvalidValueError("architecture: nested too deeply")
    if not isinstance(description, dict) or not isinstance(description.get("class"), str):
        raise InvalidValueError(f"architecture: expected {{'class': ...}}, got "
                                f"{_shown(description)}")
    name = description["class"]
    cls = _WHITELIST.get(name)
    if cls is None:
        raise InvalidValueError(f"architecture: unknown class {_shown(name)}; allowed: "
                                f"{sorted(_WHITELIST)}")
    children = description.get("children")
    if cls is nn.Sequential:
        if not isinstance(children, list) or not all(
            isinstance(c, list) and len(c) == 2 and isinstance(c[0], str) for c in children
        ):
            raise InvalidValueError("architecture: Sequential needs a list of [name, child] pairs")
        keys = [key for key, _ in children]
        bad = next((key for key in keys if not _child_name(key)), None)
        if bad is not None:
            raise InvalidValueError(f"architecture: Sequential child name {_shown(bad)} is not a "
                                    "layer name (no dot, no leading underscore, not one of "
                                    "the container's attributes)")
        if len(set(keys)) != len(keys):
            twice = next(key for key in keys if keys.count(key) > 1)
            raise InvalidValueError(f"architecture: Sequential has two children named "
                                    f"{_shown(twice)}")
        return name, cls, [(key, child) for key, child in children], None
    if cls in (nn.Parallel, nn.ModuleList):
        if not isinstance(children, list):
            raise InvalidValueError(f"architecture: {name} needs a list of children")
        prefix = "branches." if cls is nn.Parallel else ""
        return name, cls, [(f"{prefix}{i}", child) for i, child in enumerate(children)], None
    args = description.get("args", {})
    if not isinstance(args, dict) or not all(_plain_arg(val) for val in args.values()):
        raise InvalidValueError(f"architecture: {name} needs a dict of plain constructor arguments")
    return name, cls, None, args


def build(description, _depth: int = 0) -> nn.Module:
    """Construct the module that :func:`describe` described (whitelisted classes only).

    Call :func:`check_parameter_shapes` first when the description comes from a file:
    building allocates every parameter at the shape the description declares.

    Raises
    ------
    ValueError
        For anything that is not a valid description.
    """
    name, cls, children, args = _node(description, _depth)
    if cls is nn.Sequential:
        return nn.Sequential(OrderedDict((key, build(child, _depth + 1))
                                         for key, child in children))
    if cls in (nn.Parallel, nn.ModuleList):
        built = [build(child, _depth + 1) for _, child in children]
        return nn.Parallel(*built) if cls is nn.Parallel else nn.ModuleList(built)
    try:
        return cls(**args)
    except (TypeError, ValueError) as exc:
        raise InvalidValueError(f"architecture: cannot build {name}(**{_shown(args)}): "
                                f"{exc}") from None


def _conv_parameters(dims: int):
    def shapes(in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        # The constructor's own checks, in its order: what they refuse, it refuses
        # before allocating anything.
        cin = _validate.as_int("in_channels", in_channels, minimum=1)
        cout = _validate.as_int("out_channels", out_channels, minimum=1)
        kernel = per_axis(_validate.as_kernel_size("kernel_size", kernel_size, dims), dims)
        _validate.as_window_step("stride", stride, dims, minimum=1)
        _validate.as_window_step("padding", padding, dims, minimum=0)
        return {"weight": (cout, cin, *kernel), **({"bias": (cout,)} if bias else {})}

    return shapes


def _linear_parameters(in_features, out_features, bias=True):
    fin = _validate.as_int("in_features", in_features, minimum=1)
    fout = _validate.as_int("out_features", out_features, minimum=1)
    return {"weight": (fout, fin), **({"bias": (fout,)} if bias else {})}


#: The parameters each whitelisted class with parameters makes, ``{name: shape}``, from
#: its constructor's arguments (the other whitelisted classes make none; a test checks
#: both against the real layers).
PARAMETER_SHAPES = {nn.Conv2d: _conv_parameters(2), nn.Conv3d: _conv_parameters(3),
                    nn.Linear: _linear_parameters}


def _declared_parameters(description, prefix: str = "", depth: int = 0):
    """``(key, shape, layer)`` of every parameter the architecture declares, without
    building anything; a layer whose arguments its constructor would refuse is skipped
    (:func:`build` refuses it before allocating)."""
    name, cls, children, args = _node(description, depth)
    if children is not None:
        for key, child in children:
            yield from _declared_parameters(child, f"{prefix}{key}.", depth + 1)
        return
    rule = PARAMETER_SHAPES.get(cls)
    if rule is None:
        return
    try:
        inspect.signature(rule).bind(**args)
        shapes = rule(**args)
    except (TypeError, ValueError):
        return
    for param, shape in shapes.items():
        layer = repr(prefix[:-1]) if prefix else "the model"
        yield prefix + param, shape, f"{layer} ({name})"


def check_parameter_shapes(architecture, stored: dict) -> None:
    """Refuse an architecture whose layers declare parameters the file does not store at
    those shapes: ``stored`` is ``{key: shape}`` from the ``.npy`` headers, read before
    any array or layer is allocated.

    Raises
    ------
    ValueError
        Naming the layer, the parameter, the declared and the stored shape.
    """
    for key, shape, layer in _declared_parameters(architecture):
        size = _validate.byte_text(4 * math.prod(shape))
        if key not in stored:
            raise InvalidValueError(f"architecture: layer {layer} declares a "
                                    f"{key.rsplit('.', 1)[-1]} of shape {shape} ({size} as "
                                    f"float32) but the file stores no array {key!r}")
        if tuple(stored[key]) != tuple(shape):
            raise InvalidValueError(f"architecture: layer {layer} declares a "
                                    f"{key.rsplit('.', 1)[-1]} of shape {shape} ({size} as "
                                    f"float32) but the stored array {key!r} has shape "
                                    f"{tuple(stored[key])}")


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
