"""These tests compare pybpftrace with the installed bpftrace 0.17, or with 0.17's exact output:
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
