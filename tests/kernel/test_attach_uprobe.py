"""uprobes/uretprobes on a C test program: exact call counts, return values, pid filter."""
import os
import subprocess

import pytest
from test_attach_common import (
    compile_c,
    counting_prog,
    dynamic_events,
    new_counts,
    own_fds,
)

from ebpfpy.attach import (
    ProbeNotFoundError,
    ProbeSpecError,
    attach,
    attach_uprobe,
    expand,
)
from ebpfpy.attach.binary import elf_image
from ebpfpy.isa.builder import R6, R7

pytestmark = [pytest.mark.kernel, pytest.mark.uprobes]

N = 25


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    return compile_c("uprobe_target.c", str(tmp_path_factory.mktemp("uprobe")), "-O2")


def run(target, n=N):
    out = subprocess.run([target, str(n)], capture_output=True, text=True, check=True).stdout
    return int(out)


def ret_value(b):
    b.ldx(8, R7, R6, 80)  # pt_regs->ax: the return value on x86-64


def arg0(b):
    b.ldx(8, R7, R6, 112)  # pt_regs->di: the first argument


def test_uprobe_counts_calls_and_reads_arg(target):
    with new_counts() as counts, counting_prog("kprobe", counts, values=[arg0]) as prog:
        with attach_uprobe(prog, target, "work") as att:
            run(target)
            assert counts[0] == N
            assert counts[1] == sum(range(N))
        assert att.closed
        run(target)
        assert counts[0] == N


def test_uretprobe_return_value(target):
    def ret32(b):
        ret_value(b)
        b.lsh(R7, 32)
        b.arsh(R7, 32)  # int return: sign-extend eax

    with new_counts() as counts, counting_prog("kprobe", counts, values=[ret32]) as prog:
        with attach_uprobe(prog, target, "work", retprobe=True):
            run(target)
        assert counts[0] == N
        assert counts[1] == sum(3 * i + 1 for i in range(N))


def test_uretprobe_negative_return_value(target):
    with new_counts() as counts, counting_prog("kprobe", counts, values=[ret_value]) as prog:
        with attach(prog, f"ur:{target}:negate")[0]:
            run(target, 4)
        assert counts[0] == 1
        assert counts[1] == -sum(3 * i + 1 for i in range(4))


def test_address_and_symbol_offset_forms(target):
    image = elf_image(target)
    work = image.symbol("work")
    [by_addr] = expand(f"uprobe:{target}:{work.vaddr:#x}")
    [by_sym] = expand(f"uprobe:{target}:work")
    assert by_addr.offset == by_sym.offset == image.vaddr_to_offset(work.vaddr)
    with new_counts() as counts, counting_prog("kprobe", counts) as prog:
        with attach_uprobe(prog, target, work.vaddr):
            run(target, 3)
        assert counts[0] == 3
    [plus] = expand(f"uprobe:{target}:work+4")
    assert plus.offset == by_sym.offset + 4 and plus.probe.endswith(":work+4")


def test_wildcard_symbols(target):
    probes = expand(f"uprobe:{target}:[wn]*")
    assert {"work", "negate"} <= {t.symbol for t in probes}
    with new_counts() as counts, counting_prog("kprobe", counts) as prog:
        atts = attach(prog, f"uprobe:{target}:[wn][oe][rg]*")
        try:
            run(target, 5)
            assert counts[0] == 5 + 1
        finally:
            for a in atts:
                a.close()


def test_pid_filter(target):
    with new_counts() as counts, counting_prog("kprobe", counts) as prog:
        waiting = subprocess.Popen([target, str(N), "wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            with attach_uprobe(prog, target, "work", pid=waiting.pid):
                run(target, 7)  # another process: filtered out
                assert counts[0] == 0
                out, _ = waiting.communicate("go\n", timeout=10)
                assert int(out) == run(target, N)
                assert counts[0] == N
        finally:
            if waiting.poll() is None:
                waiting.kill()
                waiting.wait()


def test_library_name_resolution():
    [t] = expand("uprobe:libc:malloc")
    assert os.path.basename(t.path).startswith("libc.so")
    assert t.offset == elf_image(t.path).vaddr_to_offset(elf_image(t.path).symbol("malloc").vaddr)


def test_bad_input_is_named(target):
    with pytest.raises(ProbeNotFoundError, match="no_such_function"):
        expand(f"uprobe:{target}:no_such_function")
    with pytest.raises(ProbeNotFoundError, match="/no/such/binary"):
        expand("uprobe:/no/such/binary:main")
    with pytest.raises(ProbeNotFoundError, match="libnosuchlibrary"):
        expand("uprobe:libnosuchlibrary:foo")
    with pytest.raises(ProbeSpecError):
        expand("uprobe:onlybinary")
    with new_counts() as counts, counting_prog("kprobe", counts) as prog:
        with pytest.raises(ProbeNotFoundError, match="no_such_function"):
            attach_uprobe(prog, target, "no_such_function")


def test_uprobe_teardown_leaves_nothing(target):
    before = own_fds()
    with new_counts() as counts, counting_prog("kprobe", counts) as prog:
        for retprobe in (False, True):
            att = attach_uprobe(prog, target, "work", retprobe=retprobe)
            att.close()
    assert own_fds() == before
    assert all(not text.strip() for text in dynamic_events().values())


def test_library_uprobe_and_uretprobe_on_libc_getpid():
    """`uprobe:libc:getpid` resolves to the libc this process maps; Python's os.getpid calls it."""
    with new_counts() as counts, counting_prog("kprobe", counts, tgid=os.getpid(), values=[ret_value]) as prog:
        with attach(prog, "ur:libc:getpid")[0]:
            for _ in range(13):
                os.getpid()
        assert counts[0] == 13
        assert counts[1] == 13 * os.getpid()
