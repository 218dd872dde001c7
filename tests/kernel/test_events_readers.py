"""Perf buffer and ring buffer readers against the real kernel.

A tracepoint program on syscalls:sys_enter_getpid, filtered on the tgid of
tests/progs/getpid_loop, writes one record per call; the loop runs N times,
so exactly N records with known contents must come out.
"""
import os
import subprocess

import pytest

from ebpfpy.events import demo
from ebpfpy.events.perfbuf import PerfBuffer
from ebpfpy.events.ringbuf import RingBuffer

pytestmark = pytest.mark.kernel

PROGS = os.path.join(os.path.dirname(__file__), "..", "progs")
SYS_getpid = 39 if os.uname().machine == "x86_64" else None


@pytest.fixture(scope="module")
def getpid_loop(tmp_path_factory):
    try:
        return demo.compile_c(os.path.join(PROGS, "getpid_loop.c"),
                              str(tmp_path_factory.mktemp("progs")), None, "-O2")
    except FileNotFoundError:
        pytest.skip("gcc is not installed")


class Waiting:
    """getpid_loop started with --wait: its tgid is known before it runs."""

    def __init__(self, path, n):
        self.proc = subprocess.Popen([path, str(n), "--wait"], stdin=subprocess.PIPE)
        self.pid = self.proc.pid

    def run(self):
        self.proc.stdin.write(b"x")
        self.proc.stdin.close()
        assert self.proc.wait(timeout=30) == 0

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def check_records(records, n, pid):
    assert len(records) == n
    parsed = [demo.RECORD.unpack_from(r) for r in records]
    assert {pid_tgid >> 32 for _, _, pid_tgid in parsed} == {pid}
    if SYS_getpid is not None:
        assert {nr for _, nr, _ in parsed} == {SYS_getpid}
    return parsed


def run_output(kind, map_, loop, n, reader, wait_for):
    child = Waiting(loop, n)
    try:
        with demo.attached_on_getpid(demo.syscall_output_program(kind, map_, child.pid)):
            child.run()
            wait_for()
    finally:
        child.kill()
    return child.pid


def test_perf_buffer_exact_count_and_contents(getpid_loop):
    from ebpfpy.maps import Map

    n = 3000
    got = {}

    def on_records(cpu, records):
        got.setdefault(cpu, []).extend(records)

    with Map.create("perf_event_array", 4, 4, os.cpu_count()) as m, \
            PerfBuffer(m, on_records, pages=64) as pb:
        pid = run_output("perf", m, getpid_loop, n, pb, lambda: None)
        total = 0
        while pb.poll(200):  # woken per record: poll until quiet
            pass
        total = pb.consume()
        assert total == 0  # poll already drained everything
        assert pb.lost == 0
    records = [r for recs in got.values() for r in recs]
    assert all(len(r) == 28 for r in records)  # 24 bytes + the kernel's 4 of padding
    parsed = check_records(records, n, pid)
    for recs in got.values():  # per CPU, records come in time order
        times = [demo.RECORD.unpack_from(r)[0] for r in recs]
        assert times == sorted(times)
    assert len({t for t, _, _ in parsed}) > 1


def test_perf_buffer_reports_lost_records():
    """A 1-page ring holds 102 records of 40 bytes; 5000 events on one CPU
    overflow it. The kernel counts the drops and reports them in a
    PERF_RECORD_LOST once space is free again (at the next output), so
    after draining one more event is made: delivered + lost == N + 1.
    The events are this process's own getpid calls, pinned to one CPU."""
    from ebpfpy.maps import Map

    n = 5000
    got, lost_seen = [], []
    cpus = os.sched_getaffinity(0)
    cpu = min(cpus)
    os.sched_setaffinity(0, {cpu})
    try:
        with Map.create("perf_event_array", 4, 4, os.cpu_count()) as m, \
                PerfBuffer(m, lambda c, recs: got.extend(recs), pages=1, cpus=[cpu],
                           lost_callback=lambda c, k: lost_seen.append((c, k))) as pb:
            with demo.attached_on_getpid(demo.syscall_output_program("perf", m, os.getpid())):
                for _ in range(n):
                    os.getpid()
                pb.consume()
                assert 0 < len(got) <= 4096 // 40
                os.getpid()
                pb.consume()
    finally:
        os.sched_setaffinity(0, cpus)
    check_records(got, len(got), os.getpid())
    assert len(got) + pb.lost == n + 1
    assert lost_seen and {c for c, _ in lost_seen} == {cpu}
    assert sum(k for _, k in lost_seen) == pb.lost


@pytest.mark.ringbuf
def test_ring_buffer_exact_count_and_contents(getpid_loop):
    from ebpfpy.maps import Map

    n = 3000
    got = []
    with Map.create("ringbuf", 0, 0, 1 << 18) as m, RingBuffer(m, got.extend) as rb:
        pid = run_output("ringbuf", m, getpid_loop, n, rb, lambda: None)
        while rb.poll(200):
            pass
        assert rb.consume() == 0
        assert rb.pending() == 0
        assert rb.discarded == 0
    assert all(len(r) == demo.RECORD.size for r in got)  # no padding in a ring buffer
    parsed = check_records(got, n, pid)
    # One ring for all CPUs: records come out in commit order, which is
    # time order for a single-threaded producer.
    times = [t for t, _, _ in parsed]
    assert times == sorted(times)


@pytest.mark.ringbuf
def test_two_ring_buffers_in_one_epoll(getpid_loop):
    """Two programs on the same tracepoint, each writing to its own ring."""
    from ebpfpy.maps import Map

    n = 500
    got = {"a": [], "b": []}
    with Map.create("ringbuf", 0, 0, 1 << 16) as ma, Map.create("ringbuf", 0, 0, 1 << 16) as mb, \
            RingBuffer() as rb:
        rb.add(ma, got["a"].extend)
        rb.add(mb, got["b"].extend)
        with pytest.raises(ValueError):
            rb.add(ma, got["a"].extend)
        child = Waiting(getpid_loop, n)
        try:
            with demo.attached_on_getpid(demo.syscall_output_program("ringbuf", ma, child.pid)), \
                    demo.attached_on_getpid(demo.syscall_output_program("ringbuf", mb, child.pid)):
                child.run()
                while rb.poll(200):
                    pass
        finally:
            child.kill()
    a = check_records(got["a"], n, child.pid)
    b = check_records(got["b"], n, child.pid)
    assert len({t for t, _, _ in a} | {t for t, _, _ in b}) >= n


def test_perf_buffer_cleans_up_map_entries():
    """close() empties the CPU slots: the map would otherwise keep the
    events alive (and receiving) as long as the map itself lives."""
    import errno

    from ebpfpy.maps import Map
    from ebpfpy.sys import bpf
    from ebpfpy.sys.errors import BPFError

    with Map.create("perf_event_array", 4, 4, os.cpu_count()) as m:
        before = len(os.listdir("/proc/self/fd"))
        pb = PerfBuffer(m, lambda cpu, recs: None, pages=1, cpus=[0])
        assert len(os.listdir("/proc/self/fd")) > before  # the event, its mmap, the epoll
        pb.close()
        assert len(os.listdir("/proc/self/fd")) == before
        with pytest.raises(BPFError) as exc:
            bpf.map_delete_elem(m.fd, (0).to_bytes(4, "little"))
        assert exc.value.errno == errno.ENOENT


def test_perf_buffer_watermark_defers_wakeups(getpid_loop):
    """With a watermark above what N records fill, epoll never fires; the
    records are still there for consume()."""
    from ebpfpy.maps import Map

    n = 200  # 200 * 40 bytes, far below the 128 KiB watermark
    got = []
    with Map.create("perf_event_array", 4, 4, os.cpu_count()) as m, \
            PerfBuffer(m, lambda cpu, recs: got.extend(recs), pages=64, watermark=128 << 10) as pb:
        pid = run_output("perf", m, getpid_loop, n, pb, lambda: None)
        assert pb.poll(100) == 0
        assert pb.consume() == n
    check_records(got, n, pid)


def discarding_program(out_map, tgid):
    """reserve, then submit or discard on a random bit (kept in the record)."""
    from ebpfpy.isa.builder import R0, R1, R2, R3, R7, R8, R9, Builder

    b = Builder()
    demo.filter_tgid(b, tgid, "out")
    b.call("get_prandom_u32")
    b.mov(R9, R0)
    b.call("ktime_get_ns")
    b.mov(R8, R0)
    b.ld_map_fd(R1, out_map)
    b.mov(R2, demo.RECORD.size)
    b.mov(R3, 0)
    b.call("ringbuf_reserve")
    b.jeq(R0, 0, "out")
    b.stx("dw", R0, R8, 0)
    b.stx("dw", R0, R9, 8)  # the random value in place of the syscall number
    b.stx("dw", R0, R7, 16)
    b.mov(R1, R0)
    b.mov(R2, 0)
    b.jset(R9, 1, "discard")
    b.call("ringbuf_submit")
    b.ja("out")
    b.label("discard")
    b.call("ringbuf_discard")
    b.label("out")
    b.mov(R0, 0)
    b.exit()
    return b.build()


@pytest.mark.ringbuf
def test_ring_buffer_skips_discarded_records(getpid_loop):
    from ebpfpy.maps import Map

    n = 2000
    got = []
    with Map.create("ringbuf", 0, 0, 1 << 18) as m, RingBuffer(m, got.extend) as rb:
        child = Waiting(getpid_loop, n)
        try:
            with demo.attached_on_getpid(discarding_program(m, child.pid)):
                child.run()
                while rb.poll(200):
                    pass
        finally:
            child.kill()
        discarded = rb.discarded
    assert len(got) + discarded == n
    assert 0 < discarded < n  # a random bit splits the calls
    assert all(demo.RECORD.unpack(r)[1] % 2 == 0 for r in got)
    assert {demo.RECORD.unpack(r)[2] >> 32 for r in got} == {child.pid}
