"""kfunc/kretfunc (fentry/fexit) probes: BPF trampolines on vfs_read.

Run in the 6.1 qemu guest (`tests/vm/run -- tests/kernel/test_attach_fentry.py`);
the dev VM cannot load BPF_PROG_TYPE_TRACING programs, where only the clear
error is checked. The programs count this thread's vfs_read calls of one
unusual size (READ_SIZE) from /dev/zero, so other readers cannot change the
counts; fexit also sums the return values (bytes read).
"""
import os

import pytest
from test_attach_common import counting_insns, new_counts, own_fds

from ebpfpy import features
from ebpfpy.attach import (
    ProbeNotFoundError,
    ProbeUnavailableError,
    attach,
    context,
    expand,
)
from ebpfpy.attach.fentry import UNAVAILABLE, attach_fentry
from ebpfpy.isa.builder import R6, R7
from ebpfpy.progs import Program
from ebpfpy.sys.consts import AttachType, ProgType

FUNC = "vfs_read"  # (struct file *file, char *buf, size_t count, loff_t *pos) -> ssize_t
READ_SIZE = 4321
COUNT_OFF = 16  # args: one u64 slot each; count is the third
RETVAL_OFF = 32  # fexit: the return value follows the 4 arguments


def _reads(n, size=READ_SIZE):
    fd = os.open("/dev/zero", os.O_RDONLY)
    try:
        for _ in range(n):
            assert len(os.read(fd, size)) == size
    finally:
        os.close(fd)


def _only_our_size(b):
    b.ldx(8, R7, R6, COUNT_OFF)
    b.jne(R7, READ_SIZE, "out")


def _retval(b):
    b.ldx(8, R7, R6, RETVAL_OFF)


def _file_nonnull(b):
    b.ldx(8, R7, R6, 0)
    b.jeq(R7, 0, "out")


def load_for(probe: str, counts, values=()) -> Program:
    """A counting program loaded for the one target of `probe` (attach type and BTF id from its context)."""
    (target,) = expand(probe)
    ctx = context(target)
    insns = counting_insns(counts, values=values, extra_check=_only_our_size)
    # counting_insns filters on tgid; our reads happen in this thread, which the size singles out
    return Program.load(ctx.prog_type, insns, name="fentry_test",
                        expected_attach_type=ctx.expected_attach_type, attach_btf_id=ctx.attach_btf_id)


@pytest.mark.kernel
@pytest.mark.fentry
@pytest.mark.btf
def test_context_carries_btf_prototype():
    (target,) = expand(f"kretfunc:{FUNC}")
    ctx = context(target)
    assert ctx.prog_type == ProgType.TRACING and ctx.args == "btf_func" and ctx.retval
    assert ctx.expected_attach_type == AttachType.TRACE_FEXIT
    assert [p.name for p in ctx.func_proto.params] == ["file", "buf", "count", "pos"]
    from ebpfpy import btf

    assert btf.vmlinux().name_of(ctx.attach_btf_id) == FUNC
    assert context(expand(f"f:{FUNC}")[0]).expected_attach_type == AttachType.TRACE_FENTRY


@pytest.mark.kernel
@pytest.mark.fentry
def test_fentry_counts_calls_exactly():
    with new_counts() as counts, load_for(f"kfunc:{FUNC}", counts) as prog:
        with attach_fentry(prog, FUNC) as att:
            assert att.probe == f"kfunc:{FUNC}"
            _reads(13)
            _reads(2, size=READ_SIZE + 1)  # other sizes are not counted
            assert counts[0] == 13
        _reads(3)
        assert counts[0] == 13  # detached on close


@pytest.mark.kernel
@pytest.mark.fentry
def test_fexit_return_value():
    with new_counts() as counts, load_for(f"kretfunc:{FUNC}", counts, values=[_retval]) as prog:
        with attach(prog, f"fr:{FUNC}")[0]:
            _reads(7)
        assert counts[0] == 7
        assert counts[1] == 7 * READ_SIZE


@pytest.mark.kernel
@pytest.mark.fentry
def test_fentry_pointer_argument_is_readable():
    """args->file is a `struct file *` (PTR_TO_BTF_ID for the verifier): loadable and non-null."""
    with new_counts() as counts:
        insns = counting_insns(counts, extra_check=lambda b: (_only_our_size(b), _file_nonnull(b)))
        ctx = context(expand(f"kfunc:{FUNC}")[0])
        with Program.load(ctx.prog_type, insns, expected_attach_type=ctx.expected_attach_type,
                          attach_btf_id=ctx.attach_btf_id) as prog, attach_fentry(prog, FUNC):
            _reads(4)
        assert counts[0] == 4


@pytest.mark.kernel
@pytest.mark.fentry
def test_wildcard_and_missing_function_and_teardown():
    names = [t.function for t in expand("kfunc:vfs_rea*")]
    assert FUNC in names and all(n.startswith("vfs_rea") for n in names)
    with pytest.raises(ProbeNotFoundError, match="ebpfpy_no_such_function"):
        expand("kfunc:ebpfpy_no_such_function")
    before = own_fds()
    with new_counts() as counts:
        prog = load_for(f"kfunc:{FUNC}", counts)
        att = attach_fentry(prog, FUNC)
        att.close()
        prog.close()
    assert own_fds() == before


@pytest.mark.kernel
def test_unsupported_kernel_says_why():
    if features.has("fentry"):
        pytest.skip("this kernel has fentry")
    with pytest.raises(ProbeUnavailableError, match="need the BPF tracing program type"):
        expand(f"kfunc:{FUNC}")
    with pytest.raises(ProbeUnavailableError) as info:
        expand("kretfunc:vfs_*")
    assert UNAVAILABLE in str(info.value)
