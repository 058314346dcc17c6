# The status codes of the kernels (FS_* in kernels/include/fastseg/kernels.h) as
# exceptions, in one place for every wrapper. Inline: compiled into each wrapper.
from fastseg._cy.kernels cimport FS_EINDEX, FS_ENOMEM, FS_EVALUE, FS_OK


cdef inline int check_status(int status, str what, str index_name="an index argument",
                             str index_range="its range") except -1:
    """Return 0 for FS_OK; otherwise raise the exception that status means.

    FS_EINDEX (a caller's index or label out of range) is an InvalidIndexError, both
    an IndexError and a ValueError, naming the argument (`index_name`) and its range;
    FS_EVALUE an InvalidValueError; FS_ENOMEM a MemoryError (a workspace allocation
    failed); any other code a RuntimeError, since kernels.h defines no other.
    """
    if status == FS_OK:
        return 0
    from fastseg.errors import InvalidIndexError, InvalidValueError
    if status == FS_EINDEX:
        raise InvalidIndexError(f"{what}: {index_name} holds a value outside {index_range}")
    if status == FS_EVALUE:
        raise InvalidValueError(f"{what}: the kernel refused an argument outside its domain")
    if status == FS_ENOMEM:
        raise MemoryError(f"{what}: could not allocate the kernel's workspace")
    raise RuntimeError(f"{what}: the kernel returned status {status}, which kernels.h does "
                       "not define")
