"""`ebpfpy prog dump` names callees and maps as `bpftool prog dump xlated` does, on programs
this test loads: helpers the verifier rewrote to kernel addresses (found through
/proc/kallsyms), inlined map lookups, kfuncs, local calls to JITed subprograms, map loads."""
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from ebpfpy.cli import main
from ebpfpy.cli.inspect import jited_ksyms
from ebpfpy.events.symbols import KernelSymbols
from ebpfpy.isa import Insn
from ebpfpy.isa.builder import R0, R1, R2, R3, R4, R5, R6, R7, R10, Builder
from ebpfpy.maps import Map
from ebpfpy.progs import Program

pytestmark = pytest.mark.kernel
needs_bpftool = pytest.mark.skipif(shutil.which("bpftool") is None, reason="no bpftool")


def ours(prog_id: int) -> str:
    res = CliRunner().invoke(main, ["prog", "dump", str(prog_id)])
    assert res.exit_code == 0, res.output
    return res.output


def bpftool(prog_id: int) -> str:
    return subprocess.run(["bpftool", "prog", "dump", "xlated", "id", str(prog_id)],
                          capture_output=True, text=True, check=True).stdout


@pytest.fixture
def maps():
    made = {
        "hash": Map.create("hash", key="I", value="Q", max_entries=8, name="dn_hash"),
        "array": Map.create("array", key="I", value="Q", max_entries=4, name="dn_array"),
        "global": Map.create("array", key="I", value="16s", max_entries=1, name="dn_global"),
        "perf": Map.create("perf_event_array", name="dn_perf"),
        "ring": Map.create("ringbuf", max_entries=4096, name="dn_ring"),
    }
    yield made
    for m in made.values():
        m.close()


def helpers_program(maps) -> list[Insn]:
    """A kprobe program calling the helpers the issue names, a subprogram, and a map value."""
    b = Builder()
    b.mov(R6, R1)
    for off in (-8, -16, -24, -32):
        b.st("dw", R10, 0, off)
    for name in ("hash", "array"):  # a call to __htab_map_lookup_elem; the array's is inlined
        b.ld_map_fd(R1, maps[name])
        b.mov(R2, R10)
        b.alu("add", R2, -4)
        b.call("map_lookup_elem")
    b.mov(R1, R10)
    b.alu("add", R1, -24)
    b.mov(R2, 16)
    b.call("get_current_comm")
    b.call("ktime_get_ns")
    b.mov(R1, R10)
    b.alu("add", R1, -32)
    b.mov(R2, 8)
    b.mov(R3, 0)
    b.call("probe_read_kernel")
    b.mov(R1, R6)
    b.ld_map_fd(R2, maps["perf"])
    b.ld_imm64(R3, 0xFFFFFFFF)
    b.mov(R4, R10)
    b.alu("add", R4, -32)
    b.mov(R5, 8)
    b.call("perf_event_output")
    b.ld_map_fd(R1, maps["ring"])
    b.mov(R2, R10)
    b.alu("add", R2, -32)
    b.mov(R3, 8)
    b.mov(R4, 0)
    b.call("ringbuf_output")
    b.ld_map_value(R7, maps["global"], 8)
    b.call_local("sub")
    b.mov(R0, 0)
    b.exit()
    b.label("sub")
    b.call("get_prandom_u32")
    b.exit()
    return b.build()


@needs_bpftool
def test_helpers_maps_and_subprograms_read_as_bpftool(maps):
    with Program.load("kprobe", helpers_program(maps), name="dn_helpers") as prog:
        pid = prog.info().id
        mine, theirs = ours(pid), bpftool(pid)
    assert mine == theirs
    # What the comparison is about: no call is left unnamed, map loads show ids.
    assert "unknown" not in mine and "call 0x" not in mine
    for name in ("bpf_get_current_comm#", "bpf_ktime_get_ns#", "bpf_probe_read_kernel#",
                 "bpf_perf_event_output#", "bpf_ringbuf_output#", "__htab_map_lookup_elem#"):
        assert f"call {name}" in mine
    assert f"= map[id:{maps['hash'].info().id}]\n" in mine
    assert f"= map[id:{maps['global'].info().id}][0]+8\n" in mine
    assert "call pc+2#bpf_prog_" in mine and mine.rstrip().endswith("exit")


def _kfunc_ids():
    try:
        from ebpfpy.btf.spec import Kind, vmlinux

        btf = vmlinux()
        return [btf.find(name, Kind.FUNC) for name in ("bpf_rcu_read_lock", "bpf_rcu_read_unlock")]
    except Exception:  # no BTF, or a kernel before 6.2
        return None


@needs_bpftool
def test_kfuncs_tail_calls_and_trace_printk_read_as_bpftool():
    kfuncs = _kfunc_ids()
    with Map.create("prog_array", key="I", value="I", max_entries=2) as jumps, \
            Map.create("array", key="I", value="8s", max_entries=1) as fmt:
        b = Builder()
        b.mov(R6, R1)
        for btf_id in kfuncs or ():
            b.call_kfunc(btf_id)
        b.ld_map_value(R1, fmt, 0)
        b.mov(R2, 4)
        b.call("trace_printk")
        b.mov(R1, R6)
        b.ld_map_fd(R2, jumps)
        b.mov(R3, 0)
        b.call("tail_call")  # the kernel's dump turns it back into call bpf_tail_call#12
        b.mov(R0, 0)
        b.exit()
        with Program.load("kprobe", b.build()) as prog:
            pid = prog.info().id
            mine, theirs = ours(pid), bpftool(pid)
    assert mine == theirs
    assert "call bpf_trace_printk#" in mine and "call bpf_tail_call#12\n" in mine
    if kfuncs:
        assert "call bpf_rcu_read_lock#" in mine


def test_jited_ksyms_name_the_subprograms(maps):
    with Program.load("kprobe", helpers_program(maps), name="dn_ksyms") as prog:
        addrs = jited_ksyms(prog.fd)
        if not addrs:
            pytest.skip("the kernel did not JIT the program")
        names = [KernelSymbols().name_at(a) for a in addrs]  # while the symbols exist
        tag = prog.info().tag_hex
    assert len(addrs) == 2  # the program and its subprogram
    assert names[0] == f"bpf_prog_{tag}_dn_ksyms"
    assert names[1].startswith("bpf_prog_") and names[1].endswith("_F")
