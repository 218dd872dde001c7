"""BEGIN/END: raw_tp programs run once each, in order, in this process."""
import os

import pytest
from helpers import emit_slot_lookup
from test_attach_common import new_counts

from ebpfpy.attach import AttachError, attach, attach_special, context
from ebpfpy.isa.builder import R0, R1, R6, Builder
from ebpfpy.progs import Program

pytestmark = pytest.mark.kernel


def stamp_prog(slots, which: int) -> Program:
    """slot[which] = ++slot[0] (the order it ran in); slot[which+2] = our tgid as the helper sees it."""
    b = Builder()
    emit_slot_lookup(b, slots, 0)
    b.mov(R6, R0)  # slot 0: the sequence counter
    b.mov(R1, 1)
    b.atomic("add", 8, R6, R1, 0, fetch=True)  # R1 = old value
    b.add(R1, 1)
    b.mov(R6, R1)
    emit_slot_lookup(b, slots, which)
    b.stx(8, R0, R6, 0)
    b.call("get_current_pid_tgid")
    b.rsh(R0, 32)
    b.mov(R6, R0)
    emit_slot_lookup(b, slots, which + 2)
    b.stx(8, R0, R6, 0)
    b.label("out")
    b.mov(R0, which)
    b.exit()
    return Program.load("raw_tracepoint", b.build(), name=f"special{which}")


def test_begin_then_end_once_each_in_our_process():
    assert context("BEGIN").prog_type.name == "RAW_TRACEPOINT"
    with new_counts(5) as slots, stamp_prog(slots, 1) as begin, stamp_prog(slots, 2) as end:
        [b] = attach(begin, "BEGIN")
        e = attach_special(end, "END")
        assert slots[0] == 0  # attaching alone runs nothing
        assert b.fire() == 1
        assert e.fire() == 2
        with pytest.raises(AttachError, match="exactly once"):
            b.fire()
        assert slots[0] == 2
        assert (slots[1], slots[2]) == (1, 2)  # BEGIN ran first, END second
        assert slots[3] == slots[4] == os.getpid()
        b.close()
        e.close()
        with pytest.raises(AttachError, match="closed"):
            e.fire()


def test_special_rejects_arguments():
    from ebpfpy.attach import ProbeSpecError, expand

    with pytest.raises(ProbeSpecError):
        expand("BEGIN:x")
    with pytest.raises(ProbeSpecError):
        attach_special(None, "MIDDLE")
