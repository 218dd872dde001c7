"""Tracepoints and raw tracepoints attached for real: exact hit counts for our own tgid."""
import os

import pytest
from test_attach_common import (
    counting_prog,
    dynamic_events,
    link_ids,
    new_counts,
    object_exists,
    own_fds,
)

from ebpfpy.attach import (
    ProbeNotFoundError,
    ProbeSpecError,
    attach,
    attach_raw_tracepoint,
    attach_tracepoint,
    context,
    expand,
)
from ebpfpy.isa.builder import R6, R7

pytestmark = pytest.mark.kernel

GETPID_NR = 39  # x86-64


def _getpids(n):
    for _ in range(n):
        os.getpid()  # glibc does not cache getpid: one syscall per call


def test_tracepoint_counts_exactly():
    with new_counts() as counts, counting_prog("tracepoint", counts, tgid=os.getpid()) as prog:
        with attach_tracepoint(prog, "syscalls", "sys_enter_getpid") as att:
            _getpids(37)
            assert counts[0] == 37
        _getpids(5)
        assert att.closed
        assert counts[0] == 37  # detached: no more hits


def test_one_tracepoint_event_covers_every_cpu():
    """The perf event is opened on CPU 0 only, yet fires on CPU 1 (see tracepoint.py)."""
    cpus = os.sched_getaffinity(0)
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    other = max(cpus)
    with new_counts() as counts, counting_prog("tracepoint", counts, tgid=os.getpid()) as prog:
        with attach_tracepoint(prog, "syscalls", "sys_enter_getpid"):
            try:
                os.sched_setaffinity(0, {other})
                _getpids(11)
            finally:
                os.sched_setaffinity(0, cpus)
            assert counts[0] == 11


def test_tracepoint_args_field_read():
    """Read args->__syscall_nr (offset from the parsed format file) inside the program."""
    fmt_field = context("tracepoint:syscalls:sys_enter_getpid").fields
    nr = next(f for f in fmt_field if f.name == "__syscall_nr")

    def emit(b):
        b.ldx(4, R7, R6, nr.offset)

    with new_counts() as counts, counting_prog("tracepoint", counts, tgid=os.getpid(), values=[emit]) as prog:
        with attach(prog, "t:syscalls:sys_enter_getpid")[0]:
            _getpids(3)
        assert counts[0] == 3
        assert counts[1] == 3 * GETPID_NR


def test_wildcard_attaches_every_match():
    with new_counts() as counts, counting_prog("tracepoint", counts, tgid=os.getpid()) as prog:
        targets = expand("tracepoint:syscalls:sys_enter_getp*id")
        names = {t.name for t in targets}
        assert {"sys_enter_getpid", "sys_enter_getppid"} <= names
        atts = attach(prog, "tracepoint:syscalls:sys_enter_getp*id")
        try:
            assert len(atts) == len(targets)
            _getpids(4)
            os.getppid()
            os.getppid()
            assert counts[0] == 6
        finally:
            for a in atts:
                a.close()


def test_raw_tracepoint_counts_getpid():
    def only_getpid(b):
        b.ldx(8, R7, R6, 8)  # args[1]: the syscall number of sys_enter
        b.jne(R7, GETPID_NR, "out")

    with new_counts() as counts, counting_prog("raw_tracepoint", counts, tgid=os.getpid(),
                                               extra_check=only_getpid) as prog:
        with attach_raw_tracepoint(prog, "sys_enter") as att:
            _getpids(23)
            assert counts[0] == 23
        assert att.closed


def test_teardown_leaves_nothing():
    before = own_fds()
    with new_counts() as counts, counting_prog("tracepoint", counts, tgid=os.getpid()) as prog:
        att = attach_tracepoint(prog, "syscalls", "sys_enter_getpid")
        ids = link_ids(att)
        assert all(object_exists("link", i) for i in ids)
        att.close()
        assert not any(object_exists("link", i) for i in ids)
    assert own_fds() == before
    assert all(not text.strip() for text in dynamic_events().values())


def test_missing_tracepoint_is_named():
    with new_counts() as counts, counting_prog("tracepoint", counts) as prog:
        with pytest.raises(ProbeNotFoundError, match="tracepoint not found: syscalls:sys_enter_nosuch"):
            attach_tracepoint(prog, "syscalls", "sys_enter_nosuch")
        with pytest.raises(ProbeNotFoundError, match="nosuchcat:x"):
            expand("tracepoint:nosuchcat:x")
    with pytest.raises(ProbeSpecError):
        expand("tracepoint:onlyone")


def test_missing_raw_tracepoint_is_named():
    with new_counts() as counts, counting_prog("raw_tracepoint", counts) as prog:
        with pytest.raises(ProbeNotFoundError, match="raw tracepoint not found: no_such_tp"):
            attach_raw_tracepoint(prog, "no_such_tp")
