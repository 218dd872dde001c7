"""The unit tests pin bpftrace 0.17's behaviour, pass by pass (parser, semantic analysis, codegen):
they run pybpftrace in 0.17 mode (``PYBPFTRACE_COMPAT=0.17``, which every child process
inherits; see ebpfpy/bpftrace/compat.py). A test of today's language passes ``--compat=0.26``,
which beats the environment."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def bpftrace_017_mode():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYBPFTRACE_COMPAT", "0.17")
        yield
