"""kprobes/kretprobes through the kprobe PMU (run in the 6.1 qemu guest; skipped without kprobes)."""
import errno
import os

import pytest
from test_attach_common import counting_prog, dynamic_events, new_counts, own_fds

from ebpfpy.attach import (
    ProbeNotFoundError,
    ProbeSpecError,
    ProbeUnavailableError,
    attach,
    attach_kprobe,
    expand,
    list_probes,
)
from ebpfpy.isa.builder import R6, R7
from ebpfpy.sys.errors import BPFError
from ebpfpy.sys.perf import pmu_available

FUNC = "__x64_sys_getpid"  # reached once per getpid() on x86-64


def _getpids(n):
    for _ in range(n):
        os.getpid()


def _ret(b):
    b.ldx(8, R7, R6, 80)  # pt_regs->ax


@pytest.mark.kernel
@pytest.mark.kprobes
def test_kprobe_counts_calls():
    with new_counts() as counts, counting_prog("kprobe", counts, tgid=os.getpid()) as prog:
        with attach_kprobe(prog, FUNC):
            _getpids(17)
            assert counts[0] == 17
        _getpids(3)
        assert counts[0] == 17


@pytest.mark.kernel
@pytest.mark.kprobes
def test_kretprobe_return_value():
    with new_counts() as counts, counting_prog("kprobe", counts, tgid=os.getpid(), values=[_ret]) as prog:
        with attach(prog, f"kr:{FUNC}")[0]:
            _getpids(5)
        assert counts[0] == 5
        assert counts[1] == 5 * os.getpid()


@pytest.mark.kernel
@pytest.mark.kprobes
def test_kprobe_symbol_plus_offset():
    """Offsets must fall on an instruction boundary; which ones do depends on IBT/ftrace padding."""
    with new_counts() as counts, counting_prog("kprobe", counts, tgid=os.getpid()) as prog:
        for off in (4, 5, 9, 8, 1):
            try:
                att = attach_kprobe(prog, FUNC, offset=off)
            except BPFError as exc:
                if exc.errno in (errno.EILSEQ, errno.EINVAL, errno.ENOENT):
                    continue
                raise
            with att:
                assert att.probe == f"kprobe:{FUNC}+{off}"
                _getpids(6)
                assert counts[0] == 6
            break
        else:
            pytest.fail(f"no offset of {FUNC} accepted")


@pytest.mark.kernel
@pytest.mark.kprobes
def test_kprobe_missing_symbol_and_teardown():
    before = own_fds()
    with new_counts() as counts, counting_prog("kprobe", counts) as prog:
        with pytest.raises(ProbeNotFoundError, match="kernel function not found: ebpfpy_no_such_function"):
            attach_kprobe(prog, "ebpfpy_no_such_function")
        attach_kprobe(prog, FUNC, retprobe=True).close()
    assert own_fds() == before
    assert not dynamic_events().get("kprobe_events", "").strip()
    with pytest.raises(ProbeSpecError):
        expand(f"kretprobe:{FUNC}+4")


@pytest.mark.kernel
@pytest.mark.kprobes
def test_kprobe_wildcard_expands_from_available_filter_functions():
    names = {t.symbol for t in expand("kprobe:vfs_rea*")}
    assert "vfs_read" in names and all(n.startswith("vfs_rea") for n in names)
    assert f"kprobe:{sorted(names)[0]}" in list_probes("kprobe:vfs_rea*")


@pytest.mark.kernel
@pytest.mark.skipif(pmu_available("kprobe"), reason="this kernel has kprobes")
def test_no_kprobes_is_a_clear_error():
    with new_counts() as counts, counting_prog("kprobe", counts) as prog:
        with pytest.raises(ProbeUnavailableError, match=r"kprobes are not available on this kernel \(CONFIG_KPROBES is off\)"):
            attach_kprobe(prog, FUNC)
        with pytest.raises(ProbeUnavailableError, match="CONFIG_KPROBES"):
            attach(prog, f"kretprobe:{FUNC}")
