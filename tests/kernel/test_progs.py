"""ebpfpy.progs / ebpfpy.links against the kernel: load, test-run, inspect, pin, attach."""
import errno
import hashlib
import os
import struct

import pytest
from helpers import emit_slot_lookup, open_fds, tracepoint_id

from ebpfpy import bpffs, features
from ebpfpy.isa.builder import R0, R1, R2, Builder
from ebpfpy.isa.insn import Insn, encode_all
from ebpfpy.links import Link, attach_perf_event, attach_raw_tracepoint
from ebpfpy.maps import Map
from ebpfpy.progs import Program
from ebpfpy.sys import perf
from ebpfpy.sys.consts import LinkType, ProgType
from ebpfpy.sys.errors import BPFError

pytestmark = pytest.mark.kernel

XDP_PASS = 2


def ret(v):
    return [Insn(0xB7, 0, 0, 0, v), Insn(0x95)]


def counter_prog(counts: Map) -> list:
    """counts[0] += 1 (atomically), return 0."""
    b = Builder()
    emit_slot_lookup(b, counts, 0)
    b.mov(R1, 1)
    b.atomic_add("dw", R0, R1, 0)
    b.label("out")
    b.mov(R0, 0)
    b.exit()
    return b.build()


# --------------------------------------------------------------------------
# load and run


def test_load_insns_or_bytes_and_test_run():
    with Program.load("socket_filter", ret(42), name="ret42") as p:
        assert p.test_run(bytes(32)).retval == 42
    with Program.load(ProgType.SOCKET_FILTER, encode_all(ret(7))) as p:
        assert p.test_run(bytes(32), repeat=10).retval == 7


def test_test_run_data_out_from_xdp():
    b = Builder()
    b.ldx("w", R2, R1, 0)  # ctx->data
    b.ldx("w", R1, R1, 4)  # ctx->data_end
    b.mov(R0, R2)
    b.add(R0, 1)
    b.jgt(R0, R1, "out")
    b.st("b", R2, 0xAB, 0)  # first packet byte = 0xab
    b.label("out")
    b.mov(R0, XDP_PASS)
    b.exit()
    data = bytes(range(64))
    with Program.load("xdp", b.build()) as p:
        res = p.test_run(data)
    assert res.retval == XDP_PASS
    assert res.data_out == b"\xab" + data[1:]


@pytest.mark.skipif(not features.has("test_run_raw_tp"), reason="no raw_tracepoint test runs")
def test_test_run_raw_tracepoint_ctx():
    b = Builder()
    b.ldx("dw", R0, R1, 8)  # second argument
    b.exit()
    with Program.load("raw_tracepoint", b.build()) as p:
        res = p.test_run(ctx_in=struct.pack("<QQ", 1, 1234))
    assert res.retval == 1234


def test_verifier_rejection_carries_the_log():
    bad = [Insn(0x79, 0, 2, 0, 0), Insn(0x95)]  # r0 = *(u64 *)(r2 + 0): r2 is uninitialised
    with pytest.raises(BPFError) as e:
        Program.load("socket_filter", bad, name="bad")
    exc = e.value
    assert exc.command == "BPF_PROG_LOAD" and exc.errno == errno.EACCES
    assert "R2 !read_ok" in exc.log
    text = str(exc)
    assert text.startswith("BPF_PROG_LOAD failed") and "R2 !read_ok" in text


def test_verifier_log_kept_when_asked():
    with Program.load("socket_filter", ret(1), log_level=2) as p:
        assert "processed 2 insns" in p.verifier_log
    with Program.load("socket_filter", ret(1)) as p:
        assert p.verifier_log == ""


# --------------------------------------------------------------------------
# info and identity


def test_info_fields_and_xlated():
    with Map.create("array", value="Q", max_entries=1, name="progs_cnt") as m, \
            Program.load("socket_filter", counter_prog(m), name="counter") as p:
        info = p.info()
        assert info.name == "counter" and info.type == ProgType.SOCKET_FILTER
        assert info.map_ids == (m.info().id,)
        assert info.xlated_len == len(info.xlated) > 0
        assert info.verified_insns > 0 and info.jited_len > 0
        assert info.created_by_uid == os.geteuid()
        xl = p.xlated()
        assert xl[-1] == Insn(0x95) and len(encode_all(xl)) == info.xlated_len
        ld = next(i for i in xl if i.op == 0x18)  # the map load, rewritten by the kernel
        assert ld.src in (0, 1)
    with Program.load("socket_filter", ret(3)) as p:
        info = p.info()
        raw = encode_all(ret(3))
        assert info.xlated == raw
        # sha256 since 6.18, sha1 before: either way a hash of the instructions.
        assert info.tag in (hashlib.sha256(raw).digest()[:8], hashlib.sha1(raw).digest()[:8])


def test_from_id_and_pin():
    with Program.load("socket_filter", ret(5), name="pinme") as p:
        pid = p.info().id
        with Program.from_id(pid) as again:
            assert again.test_run(bytes(16)).retval == 5 and again.name == "pinme"
        with bpffs.temp_dir() as d:
            path = os.path.join(d, "prog")
            p.pin(path)
            with Program.from_pin(path) as pinned:
                assert pinned.info().id == pid
    assert not os.path.exists(d)


# --------------------------------------------------------------------------
# attaching


@pytest.mark.parametrize("use_link", [True, False], ids=["bpf_link", "ioctl"])
def test_tracepoint_attach_counts_exactly(use_link):
    if use_link and not features.has("perf_link"):
        pytest.skip("no BPF_LINK_CREATE for perf events")
    tp = tracepoint_id("syscalls", "sys_enter_getppid")
    with Map.create("array", value="Q", max_entries=1) as counts, \
            Program.load("tracepoint", counter_prog(counts)) as prog:
        ev = perf.perf_event_open(perf.PerfType.TRACEPOINT, tp, pid=-1, cpu=0)
        link = attach_perf_event(prog, ev, use_link=use_link)
        with link:
            assert link.is_bpf_link == use_link
            start = counts[0]
            for _ in range(100):
                os.getppid()
            during = counts[0] - start
        assert link.closed
        for _ in range(10):
            os.getppid()
        after = counts[0] - start
    # Other processes may call getppid too: at least ours, and nothing once detached.
    assert during >= 100
    assert after == during or after - during < 10


def test_perf_link_info():
    if not features.has("perf_link"):
        pytest.skip("no BPF_LINK_CREATE for perf events")
    tp = tracepoint_id("syscalls", "sys_enter_getppid")
    with Program.load("tracepoint", ret(0)) as prog:
        ev = perf.perf_event_open(perf.PerfType.TRACEPOINT, tp, pid=-1, cpu=0)
        with attach_perf_event(prog, ev) as link:
            info = link.info()
            assert info.type == LinkType.PERF_EVENT and info.prog_id == prog.info().id


def test_raw_tracepoint_attach_and_close():
    with Map.create("array", value="Q", max_entries=1) as counts, \
            Program.load("raw_tracepoint", counter_prog(counts)) as prog:
        with attach_raw_tracepoint(prog, "sys_enter") as link:
            info = link.info()
            assert info.tp_name == "sys_enter" and info.prog_id == prog.info().id
            for _ in range(50):
                os.getppid()
            assert counts[0] >= 50
        frozen = counts[0]  # closing the only fd detached it
        for _ in range(50):
            os.getppid()
        assert counts[0] == frozen


def test_link_pin_outlives_fd():
    with Map.create("array", value="Q", max_entries=1) as counts, \
            Program.load("raw_tracepoint", counter_prog(counts)) as prog, bpffs.temp_dir() as d:
        path = os.path.join(d, "link")
        with attach_raw_tracepoint(prog, "sys_enter") as link:
            link.pin(path)
            link_id = link.info().id
        before = counts[0]
        os.getppid()
        assert counts[0] > before  # still attached through the pin
        with Link.from_pin(path) as again:
            assert again.info().id == link_id
        os.unlink(path)  # the last reference: the kernel detaches it (from a work queue)


def test_attach_failure_is_a_bpf_error():
    with Program.load("raw_tracepoint", ret(0)) as prog:
        with pytest.raises(BPFError) as e:
            attach_raw_tracepoint(prog, "no_such_tracepoint_xyz")
        assert e.value.command == "BPF_RAW_TRACEPOINT_OPEN"


def test_no_fd_leaks():
    before = open_fds()
    tp = tracepoint_id("syscalls", "sys_enter_getppid")
    with Map.create("array", value="Q", max_entries=1) as counts:
        p = Program.load("tracepoint", counter_prog(counts))
        for use_link in ([True, False] if features.has("perf_link") else [False]):
            ev = perf.perf_event_open(perf.PerfType.TRACEPOINT, tp, pid=-1, cpu=0)
            attach_perf_event(p, ev, use_link=use_link).close()
        p.close()
        with pytest.raises(BPFError):
            Program.load("socket_filter", [Insn(0x95)])
        with Program.load("raw_tracepoint", ret(0)) as rp:
            attach_raw_tracepoint(rp, "sys_enter").close()
    assert open_fds() == before


def _file_offset(path, symbol):
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        elf = ELFFile(f)
        table = elf.get_section_by_name(".symtab") or elf.get_section_by_name(".dynsym")
        addr = next(s["st_value"] for s in table.iter_symbols() if s.name == symbol)
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= addr < seg["p_vaddr"] + seg["p_memsz"]:
                return addr - seg["p_vaddr"] + seg["p_offset"]
    raise LookupError(symbol)


def _libc_path() -> str:
    """The libc this process runs with (the uprobe target below is one of its functions)."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if os.path.basename(path).startswith("libc.so") or os.path.basename(path).startswith("libc-"):
                return os.path.realpath(path)
    pytest.skip("no libc.so mapped in this process")


@pytest.mark.uprobes
def test_uprobe_via_probe_path_counts_exactly():
    """perf_event_open on the uprobe PMU (path passed through config1) + attach: exact hits.
    The target is libc's labs(), which nothing in the interpreter calls on its own (ebpfpy has no
    compiled code of its own to put a uprobe on)."""
    import ctypes

    labs = ctypes.CDLL(None).labs
    libc = _libc_path()
    offset = _file_offset(libc, "labs")
    with Map.create("array", value="Q", max_entries=1) as counts, \
            Program.load("kprobe", counter_prog(counts)) as prog:
        ev = perf.perf_event_open(perf.pmu_type("uprobe"), 0, pid=os.getpid(), cpu=-1,
                                  probe_path=libc, config2=offset)
        with attach_perf_event(prog, ev):
            for _ in range(7):
                labs(-1)
        labs(-1)  # detached: not counted
        assert counts[0] == 7
