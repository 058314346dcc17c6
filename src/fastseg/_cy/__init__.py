"""Cython wrappers of the C kernels (kernels/).

Importing any of them first checks FASTSEG_ISA: an instruction set this CPU
cannot run (or a name fastseg does not know) is refused here with the
reason, an UnavailableError, never an illegal instruction later. (The C
library alone would fall back to the CPU's choice.)
"""
from fastseg._cy import _runtime
from fastseg.errors import UnavailableError

_isa_error = _runtime.env_error()
if _isa_error is not None:
    raise UnavailableError(f"{_isa_error}; unset FASTSEG_ISA or set it to one of: auto, "
                           + ", ".join(_runtime.supported_isas()))
