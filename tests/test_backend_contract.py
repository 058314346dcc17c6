"""Every backend fills the operation table of fastseg.backends.contract, or says why not.

A new operation added to the contract is checked here on every backend with no change
to this file: each backend must provide a function with the declared parameters, or
name the operation in its NOT_PROVIDED dict with a reason.
"""
import importlib
import inspect
import pathlib
import re
import types

import numpy as np
import pytest

import fastseg
from fastseg import backends, errors, ops
from fastseg.backends import contract


def _module(name):
    # Import the module itself, not through the registry: a backend that cannot run
    # here (no GPU) must still fill the table.
    return importlib.import_module(backends._MODULES[name])


@pytest.mark.parametrize("name", backends.names())
def test_every_backend_provides_every_operation_or_says_why_not(name):
    module = _module(name)
    declined = getattr(module, "NOT_PROVIDED", {})
    assert set(declined) <= {op.name for op in contract.OPERATIONS}
    for op in contract.OPERATIONS:
        fn = getattr(module, op.name, None)
        if op.name in declined:
            assert fn is None, f"{name} both provides and declines {op.name}"
            why = declined[op.name]
            assert isinstance(why, str) and len(why) > 10, f"{name}.{op.name}: no reason"
            continue
        assert callable(fn), f"backend {name!r} neither provides {op.name!r} nor says why not"
        params = tuple(inspect.signature(fn).parameters)
        assert params == op.params, f"{name}.{op.name}{params}: the table says {op.params}"
    table = contract.build_table(name, module)
    assert all(callable(getattr(table, op.name)) for op in contract.OPERATIONS)


def test_a_declined_operation_says_why():
    with pytest.raises(errors.UnavailableError, match="to_device: the 'numpy' backend does "
                                                       "not provide it .*host"):
        backends.load("numpy").to_device(np.zeros(2, np.float32))


def test_build_table_refuses_a_silent_gap():
    complete = _module("numpy")
    gap = types.ModuleType("gap")
    gap.__dict__.update({k: v for k, v in vars(complete).items() if k != "conv2d"})
    with pytest.raises(TypeError, match=r"provides neither \['conv2d'\]"):
        contract.build_table("gap", gap)
    both = types.ModuleType("both")
    both.__dict__.update(vars(complete))
    both.NOT_PROVIDED = {"conv2d": "a reason that is long enough", **complete.NOT_PROVIDED}
    with pytest.raises(TypeError, match="both provides and declines 'conv2d'"):
        contract.build_table("both", both)
    unknown = types.ModuleType("unknown")
    unknown.__dict__.update(vars(complete))
    unknown.NOT_PROVIDED = {"conv9d": "no such thing", **complete.NOT_PROVIDED}
    with pytest.raises(TypeError, match="conv9d"):
        contract.build_table("unknown", unknown)


def test_every_kernel_has_its_public_function():
    for op in contract.KERNELS:
        assert op.name in ops.__all__ and callable(getattr(ops, op.name)), op.name


def test_ops_name_no_backend_module():
    src = pathlib.Path(fastseg.__file__).parent
    for name in ("ops.py", "_arrays.py"):
        text = (src / name).read_text()
        for module in ("backends._cuda", "backends.cuda", "backends.c ", "numpy_backend",
                       "backends.c\n", "import _cuda"):
            assert module not in text, f"{name} names {module.strip()}"
        # No capability guessing: every backend has every entry (or declines it loudly).
        assert "hasattr(be" not in text and not re.search(r"getattr\(be, [^)]*, None\)", text)


@pytest.mark.parametrize("name", fastseg.available_backends())
def test_a_bad_index_is_an_index_and_value_error_naming_the_argument(name):
    dy = np.ones((1, 1, 2, 2), np.float32)
    bad = np.array([[[[0, 1], [2, 9]]]])  # 9 is outside the 3x3 plane
    with pytest.raises(IndexError, match="indices") as info:
        ops.max_pool2d_backward(dy, bad, (1, 1, 3, 3), backend=name)
    assert isinstance(info.value, ValueError) and not isinstance(info.value, MemoryError)
    with pytest.raises(IndexError, match="labels") as info:
        ops.softmax_cross_entropy(np.zeros((2, 3), np.float32), [0, 3], backend=name)
    assert isinstance(info.value, ValueError)
