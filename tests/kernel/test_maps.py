"""ebpfpy.maps.Map against the kernel: every supported map type through the dict API."""
import ctypes
import errno
import mmap
import os

import pytest
from helpers import emit_slot_lookup, open_fds, ret, tracepoint_id

from ebpfpy import bpffs
from ebpfpy.isa.builder import FP, R0, R1, R2, R3, R4, Builder
from ebpfpy.links import attach_perf_event
from ebpfpy.maps import Map, stack_codec, struct_codec
from ebpfpy.progs import Program
from ebpfpy.sys import perf
from ebpfpy.sys.consts import MapType, UpdateFlag
from ebpfpy.sys.errors import BPFError

pytestmark = pytest.mark.kernel

NCPUS = len(perf.possible_cpus())


# --------------------------------------------------------------------------
# codecs (pure)


def test_struct_codec_scalar_and_tuple():
    c = struct_codec("<I")
    assert c.size == 4 and c.decode(c.encode(5)) == 5
    t = struct_codec("<IQ")
    assert t.decode(t.encode((1, 2))) == (1, 2)


def test_stack_codec_drops_trailing_zeros():
    c = stack_codec(32)
    assert c.decode(c.encode([0xFFFF0001, 0xFFFF0002])) == (0xFFFF0001, 0xFFFF0002)


# --------------------------------------------------------------------------
# hash-like maps


@pytest.mark.parametrize("kind", ["hash", "lru_hash"])
def test_hash_dict_api(kind):
    with Map.create(kind, key="I", value="Q", max_entries=64, name="t_" + kind) as m:
        assert len(m) == 0 and m.get(1) is None and 1 not in m
        for i in range(20):
            m[i] = i * i
        assert len(m) == 20 and m[7] == 49 and 7 in m
        assert sorted(m) == list(range(20)) and sorted(m.keys()) == list(range(20))
        assert sorted(m.values()) == sorted(i * i for i in range(20))
        assert dict(m.items()) == {i: i * i for i in range(20)}
        del m[3]
        assert 3 not in m and len(m) == 19
        with pytest.raises(KeyError):
            del m[3]
        with pytest.raises(KeyError):
            m[3]
        assert m.pop(4) == 16 and 4 not in m
        assert m.pop(4, "gone") == "gone"
        m.update(5, 1, UpdateFlag.EXIST)
        with pytest.raises(BPFError) as e:
            m.update(5, 1, UpdateFlag.NOEXIST)
        assert e.value.errno == errno.EEXIST
        m.clear()
        assert len(m) == 0 and m.items() == []


def test_bytes_keys_and_values_by_default():
    with Map.create("hash", 8, 4, 4) as m:
        m[b"abcdefgh"] = b"\x01\x02\x03\x04"
        assert m[b"abcdefgh"] == b"\x01\x02\x03\x04"
        with pytest.raises(TypeError):
            m[1] = b"1234"
        with pytest.raises(ValueError):
            m[b"short"] = b"1234"


def test_ctypes_struct_keys_and_values():
    class Key(ctypes.Structure):
        _fields_ = [("pid", ctypes.c_uint32), ("cpu", ctypes.c_uint32)]

    class Val(ctypes.Structure):
        _fields_ = [("count", ctypes.c_uint64), ("bytes", ctypes.c_uint64)]

    with Map.create("hash", key=Key, value=Val, max_entries=8) as m:
        assert (m.key_size, m.value_size) == (8, 16)
        m[Key(10, 1)] = Val(3, 300)
        ((k, v),) = m.items()
        assert (k.pid, k.cpu, v.count, v.bytes) == (10, 1, 3, 300)
        assert m[Key(10, 1)].bytes == 300
    with Map.create("array", value=ctypes.c_uint64, max_entries=2) as a:
        a[1] = 9
        assert a[1] == 9 and a[0] == 0


@pytest.mark.parametrize("kind", ["hash", "array", "percpu_hash", "percpu_array", "lru_percpu_hash"])
def test_batch_and_fallback_agree(kind):
    n = 600  # more than one 256-entry batch
    with Map.create(kind, key="I", value="I", max_entries=n) as m:
        for i in range(0, n, 2 if "array" in kind else 1):
            m[i] = [i + c for c in range(m.ncpus)] if m.props.percpu else i * 7
        batched, walked = m.items(batch=True), m.items(batch=False)
        assert sorted(batched) == sorted(walked)
        if "lru" not in kind:  # LRU maps may evict before they are full
            assert len(walked) == n
        assert m.dump() == dict(walked)


def test_batch_grows_count_for_crowded_buckets():
    # max_entries 1 makes the first batch count 1; buckets may hold more: ENOSPC -> retry bigger.
    with Map.create("hash", key="I", value="I", max_entries=1, flags=1) as m:  # BPF_F_NO_PREALLOC
        m[1] = 2
        assert m.items(batch=True) == [(1, 2)]


# --------------------------------------------------------------------------
# arrays and per-CPU values


def test_array_semantics():
    with Map.create("array", value="Q", max_entries=4) as m:
        assert len(m) == 4 and list(m) == [0, 1, 2, 3] and m[2] == 0
        m[2] = 5
        assert m.dump() == {0: 0, 1: 0, 2: 5, 3: 0}
        with pytest.raises(BPFError) as e:
            del m[2]
        assert e.value.errno == errno.EINVAL
        m.clear()
        assert m[2] == 0 and len(m) == 4
        with pytest.raises(KeyError):
            m[4]


@pytest.mark.parametrize("kind", ["percpu_array", "percpu_hash", "lru_percpu_hash"])
def test_percpu_values_are_lists_per_possible_cpu(kind):
    with Map.create(kind, key="I", value="I", max_entries=4) as m:
        assert m.ncpus == NCPUS and m.user_value_size == 8 * NCPUS  # 4-byte values padded to 8
        m[1] = [10 + c for c in range(NCPUS)]
        assert m[1] == [10 + c for c in range(NCPUS)]
        m[2] = 3  # one value: every CPU
        assert m[2] == [3] * NCPUS
        with pytest.raises(ValueError):
            m[3] = [1] * (NCPUS + 1)


def test_percpu_counts_from_a_program():
    """A program increments the per-CPU slot of the CPU it runs on; the sum is the run count."""
    with Map.create("percpu_array", value="Q", max_entries=1) as m:
        b = Builder()
        emit_slot_lookup(b, m, 0)
        b.ldx("dw", R1, R0, 0)
        b.add(R1, 1)
        b.stx("dw", R0, R1, 0)
        b.label("out")
        b.mov(R0, 0)
        b.exit()
        with Program.load("socket_filter", b.build()) as prog:
            prog.test_run(bytes(64), repeat=25)
        assert sum(m[0]) == 25


# --------------------------------------------------------------------------
# special types


def test_prog_array_holds_programs():
    with Map.create("prog_array", max_entries=4) as m, \
            Program.load("socket_filter", ret(0)) as p:
        m[1] = p
        assert m[1] == p.info().id  # user space reads back the program id
        assert m.items() == [(1, p.info().id)]
        del m[1]
        assert m.items() == []


def test_perf_event_array_holds_perf_events():
    with Map.create("perf_event_array") as m:
        assert m.max_entries == NCPUS and list(m) == list(range(NCPUS))
        with perf.perf_event_open(perf.PerfType.SOFTWARE, perf.SwEvent.BPF_OUTPUT, cpu=0,
                                  sample_type=perf.SampleType.RAW, sample_period=1) as ev:
            m[0] = ev
            with pytest.raises(BPFError):
                m[0]  # values are write-only from user space
            del m[0]


@pytest.mark.ringbuf
def test_ringbuf_sizes_and_no_dict_api():
    with Map.create("ringbuf", max_entries=5000) as m:
        info = m.info()
        assert info.type == MapType.RINGBUF and (info.key_size, info.value_size) == (0, 0)
        assert info.max_entries == 8192 if mmap.PAGESIZE == 4096 else info.max_entries % mmap.PAGESIZE == 0
        with pytest.raises(TypeError):
            m[0]
        with pytest.raises(TypeError):
            len(m)
    with Map.create("ringbuf") as m:
        assert m.max_entries & (m.max_entries - 1) == 0


def test_stack_trace_map_filled_by_a_tracepoint():
    """get_stackid() on sched_process_fork: the stored kernel stack has several frames.

    Not a syscall tracepoint: on 6.1 those run with the user-mode registers,
    so get_stackid() finds no kernel stack there (EFAULT).
    """
    tp_id = tracepoint_id("sched", "sched_process_fork")
    with Map.create("stack_trace", max_entries=64) as stacks, \
            Map.create("array", value="i", max_entries=1) as ids:
        b = Builder()
        b.ld_map_fd(R2, stacks)
        b.mov(R3, 0)  # kernel stack
        b.call("get_stackid")  # r1 is still ctx
        b.stx("w", FP, R0, -8)
        b.st("w", FP, 0, -4)
        b.ld_map_fd(R1, ids)
        b.mov(R2, FP)
        b.add(R2, -4)
        b.mov(R3, FP)
        b.add(R3, -8)
        b.mov(R4, 0)
        b.call("map_update_elem")
        b.mov(R0, 0)
        b.exit()
        with Program.load("tracepoint", b.build()) as prog:
            ev = perf.perf_event_open(perf.PerfType.TRACEPOINT, tp_id, pid=-1, cpu=0)
            with attach_perf_event(prog, ev):
                pid = os.fork()
                if pid == 0:
                    os._exit(0)
                os.waitpid(pid, 0)
        stack_id = ids[0]
        assert stack_id >= 0, f"get_stackid failed: {stack_id}"
        ips = stacks[stack_id]
        assert len(ips) >= 2 and all(ip >= 0xFFFF_0000_0000_0000 for ip in ips)
        assert stack_id in list(stacks)


# --------------------------------------------------------------------------
# identity, pinning, fds


def test_info_from_id_and_from_fd():
    with Map.create("hash", key="I", value="I", max_entries=8, name="info_map") as m:
        info = m.info()
        assert (info.name, info.key_size, info.value_size, info.max_entries) == ("info_map", 4, 4, 8)
        m[1] = 2
        with Map.from_id(info.id, key="I", value="I") as again:
            assert again.map_type == MapType.HASH and again[1] == 2 and again.name == "info_map"
        with Map.from_fd(m.fd, key="I", value="I") as dup:  # an int is duplicated, not taken
            assert dup.fd != m.fd and dup[1] == 2
        assert m[1] == 2


def test_pin_and_from_pin():
    with bpffs.temp_dir() as d:
        path = os.path.join(d, "counts")
        with Map.create("hash", key="I", value="Q", max_entries=4) as m:
            m[1] = 11
            m.pin(path)
        with Map.from_pin(path, key="I", value="Q") as again:  # the pin kept it alive
            assert again[1] == 11
        bpffs.unpin(path)
        assert not os.path.exists(path)


def test_no_fd_leaks():
    before = open_fds()
    for kind in ("hash", "array", "percpu_hash", "percpu_array", "lru_hash", "lru_percpu_hash"):
        with Map.create(kind, key="I", value="I", max_entries=8) as m:
            m[1] = 1
            m.items()
            m.items(batch=False)
    m = Map.create("ringbuf")
    m.close()
    m.close()
    Map.create("stack_trace")  # dropped: garbage collection closes it
    assert open_fds() == before


def test_array_of_maps_with_inner_map():
    with Map.create("array", value="I", max_entries=1) as template, \
            Map.create("array_of_maps", max_entries=2, inner_map=template) as outer, \
            Map.create("array", value="I", max_entries=1) as inner:
        outer[1] = inner
        assert outer[1] == inner.info().id
        assert outer.items() == [(1, inner.info().id)]
        del outer[1]
        assert outer.items() == []
