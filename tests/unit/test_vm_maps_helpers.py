"""ebpfpy.vm: emulated maps (dict API and program side) and emulated helpers."""

from __future__ import annotations

import struct

import pytest

from ebpfpy.isa.builder import FP, R0, R1, R2, R3, R4, R5, R6, R7, Builder
from ebpfpy.vm import VM, VMError
from ebpfpy.vm.helpers import format_printk
from ebpfpy.vm.memory import MEM_BASE

M64 = (1 << 64) - 1
EFAULT, EEXIST, ENOENT, E2BIG, EINVAL = 14, 17, 2, 7, 22


def neg(errno: int) -> int:
    return -errno & M64


def update_prog(vm: VM, m, key: int, value: int, flags: int = 0):
    """r0 = map_update_elem(m, &key, &value, flags)."""
    return vm.load(f"""
        *(u32 *)(r10 - 4) = {key}
        r1 = {value} ll
        *(u64 *)(r10 - 16) = r1
        ld_pseudo r1, 1, {m.fd}
        r2 = r10
        r2 += -4
        r3 = r10
        r3 += -16
        r4 = {flags}
        call map_update_elem
        exit
    """)


def lookup_prog(vm: VM, m, key: int):
    """r0 = *map_lookup_elem(m, &key) or -1 when missing."""
    return vm.load(f"""
        *(u32 *)(r10 - 4) = {key}
        ld_pseudo r1, 1, {m.fd}
        r2 = r10
        r2 += -4
        call map_lookup_elem
        if r0 == 0 goto missing
        r0 = *(u64 *)(r0 + 0)
        exit
    missing:
        r0 = -1
        exit
    """)


def test_hash_map_program_and_python_sides():
    vm = VM()
    m = vm.create_map("hash", key="I", value="Q", max_entries=2, name="h")
    assert (m.key_size, m.value_size, m.fd, m.type_name) == (4, 8, 1, "hash")
    assert vm.run(update_prog(vm, m, 1, 10)) == 0
    assert m[1] == 10 and dict(m.items()) == {1: 10} and len(m) == 1 and 1 in m
    assert vm.run(update_prog(vm, m, 1, 11, flags=1)) == neg(EEXIST)  # BPF_NOEXIST
    assert vm.run(update_prog(vm, m, 2, 20, flags=2)) == neg(ENOENT)  # BPF_EXIST
    assert vm.run(update_prog(vm, m, 2, 20)) == 0
    assert vm.run(update_prog(vm, m, 3, 30)) == neg(E2BIG)  # full
    assert vm.run(update_prog(vm, m, 1, 12, flags=8)) == neg(EINVAL)
    m[2] = 21
    assert vm.run(lookup_prog(vm, m, 2)) == 21 and vm.run(lookup_prog(vm, m, 9)) == M64
    del m[2]
    assert m.get(2) is None and m.pop(1) == 10 and len(m) == 0
    with pytest.raises(KeyError):
        m[5]
    with pytest.raises(VMError, match="EEXIST"):
        m[4] = 1
        m.update(4, 2, flags=1)


def test_pointer_into_deleted_element_faults():
    vm = VM()
    m = vm.create_map("hash", key="I", value="Q", max_entries=4)
    m[0] = 5
    prog = vm.load(f"""
        *(u32 *)(r10 - 4) = 0
        ld_pseudo r1, 1, {m.fd}
        r2 = r10
        r2 += -4
        call map_lookup_elem
        if r0 == 0 goto out
        r6 = r0
        ld_pseudo r1, 1, {m.fd}
        r2 = r10
        r2 += -4
        call map_delete_elem
        r0 = *(u64 *)(r6 + 0)
    out:
        exit
    """)
    with pytest.raises(VMError, match=r"instruction 13: read of 8 bytes at 0x4000000.*no memory there"):
        vm.run(prog)


def test_value_bounds_and_read_only_values():
    vm = VM()
    m = vm.create_map("array", 4, 8, 2)
    over = vm.load(f"ld_pseudo r1, 2, {m.fd}, 4\nr0 = *(u64 *)(r1 + 0)\nexit")
    with pytest.raises(VMError, match="running 4 bytes past the end of value of map 'map1'"):
        vm.run(over)
    ro = vm.create_map("array", 4, 8, 1, name="consts", flags=0x80)  # BPF_F_RDONLY_PROG
    ro[0] = struct.pack("<Q", 41)
    prog = vm.load(f"ld_pseudo r1, 2, {ro.fd}, 0\nr0 = *(u64 *)(r1 + 0)\nr0 += 1\nexit")
    assert vm.run(prog) == 42
    with pytest.raises(VMError, match=r"write of 8 bytes .* into read-only value of map 'consts'"):
        vm.run(vm.load(f"ld_pseudo r1, 2, {ro.fd}, 0\n*(u64 *)(r1 + 0) = 1\nexit"))


def test_array_map():
    vm = VM()
    m = vm.create_map("array", key="I", value="Q", max_entries=3)
    assert m.items() == [(0, 0), (1, 0), (2, 0)]
    assert vm.run(update_prog(vm, m, 1, 7)) == 0
    assert vm.run(update_prog(vm, m, 3, 7)) == neg(E2BIG)
    assert vm.run(update_prog(vm, m, 0, 7, flags=1)) == neg(EEXIST)
    assert m[1] == 7 and vm.run(lookup_prog(vm, m, 1)) == 7 and vm.run(lookup_prog(vm, m, 3)) == M64
    with pytest.raises(VMError, match="cannot be deleted"):
        del m[0]
    m.clear()
    assert m[1] == 0


def test_percpu_maps_use_the_running_cpu():
    vm = VM(ncpus=4, cpu=2)
    h = vm.create_map("percpu_hash", key="I", value="Q", max_entries=4)
    a = vm.create_map("percpu_array", key="I", value="Q", max_entries=1)
    assert vm.run(update_prog(vm, h, 5, 9)) == 0
    assert h[5] == [0, 0, 9, 0]
    vm.cpu = 1
    assert vm.run(update_prog(vm, h, 5, 3)) == 0
    assert h[5] == [0, 3, 9, 0]
    assert vm.run(lookup_prog(vm, h, 5)) == 3
    a[0] = [1, 2, 3, 4]
    assert vm.run(lookup_prog(vm, a, 0)) == 2
    assert len(a.lookup_raw(b"\0\0\0\0")) == 32


def test_lru_hash_evicts_the_least_recently_used():
    vm = VM()
    m = vm.create_map("lru_hash", key="I", value="Q", max_entries=2)
    vm.run(update_prog(vm, m, 1, 1))
    vm.run(update_prog(vm, m, 2, 2))
    vm.run(lookup_prog(vm, m, 1))  # 1 is now the most recent
    assert vm.run(update_prog(vm, m, 3, 3)) == 0
    assert sorted(m.keys()) == [1, 3]


def test_ringbuf_output_reserve_submit_discard():
    vm = VM()
    rb = vm.create_map("ringbuf", max_entries=64, name="events")
    prog = vm.load(f"""
        r1 = 0x1122334455667788 ll
        *(u64 *)(r10 - 8) = r1
        ld_pseudo r1, 1, {rb.fd}
        r2 = r10
        r2 += -8
        r3 = 8
        r4 = 0
        call ringbuf_output
        r6 = r0
        ld_pseudo r1, 1, {rb.fd}
        r2 = 4
        r3 = 0
        call ringbuf_reserve
        if r0 == 0 goto out
        *(u32 *)(r0 + 0) = 0xabcd
        r1 = r0
        r2 = 0
        call ringbuf_submit
        ld_pseudo r1, 1, {rb.fd}
        r2 = 4
        r3 = 0
        call ringbuf_reserve
        if r0 == 0 goto out
        r1 = r0
        r2 = 0
        call ringbuf_discard
        ld_pseudo r1, 1, {rb.fd}
        r2 = 64
        r3 = 0
        call ringbuf_reserve
        r0 += r6
    out:
        exit
    """)
    assert vm.run(prog) == 0  # the last reservation does not fit: NULL, and output returned 0
    assert rb.records == [struct.pack("<Q", 0x1122334455667788), struct.pack("<I", 0xABCD)]
    assert rb.consume() == [struct.pack("<Q", 0x1122334455667788), struct.pack("<I", 0xABCD)]
    assert rb.records == [] and rb.consume() == []
    with pytest.raises(TypeError):
        rb[0]


def test_ringbuf_submit_of_a_stray_pointer():
    vm = VM()
    vm.create_map("ringbuf", max_entries=4096)
    with pytest.raises(VMError, match="instruction 2: ringbuf_submit of 0x7ff0000001f8, which is not a reserved"):
        vm.run(vm.load("r1 = r10\nr1 += -8\ncall ringbuf_submit\nexit"))


def test_perf_event_output_collects_records():
    vm = VM(ncpus=2, cpu=1)
    pe = vm.create_map("perf_event_array")
    assert pe.max_entries == 2
    prog = vm.load(f"""
        *(u64 *)(r10 - 8) = 42
        ld_pseudo r2, 1, {pe.fd}
        r3 = 0xffffffff ll
        r4 = r10
        r4 += -8
        r5 = 8
        call perf_event_output
        r6 = r0
        ld_pseudo r2, 1, {pe.fd}
        r3 = 5
        r4 = r10
        r4 += -8
        r5 = 8
        call perf_event_output
        r0 += r6
        exit
    """)
    assert vm.run(prog) == neg(E2BIG)
    assert pe.records == [(1, struct.pack("<Q", 42))]


def test_stack_trace_map_and_get_stackid():
    vm = VM(kernel_stack=[0xFFFF_1000, 0xFFFF_2000, 0xFFFF_3000], user_stack=[0x400000])
    st = vm.create_map("stack_trace", max_entries=1024, value_size=8 * 4)

    def stackid(flags: int) -> int:
        return vm.run(vm.load(f"ld_pseudo r2, 1, {st.fd}\nr3 = {flags} ll\ncall get_stackid\nexit"))

    kid = stackid(0)
    assert 0 <= kid < 1024 and st[kid] == (0xFFFF_1000, 0xFFFF_2000, 0xFFFF_3000)
    assert stackid(0) == kid
    uid = stackid(1 << 8)  # BPF_F_USER_STACK
    assert st[uid] == (0x400000,)
    assert st[stackid(1)] == (0xFFFF_2000, 0xFFFF_3000)  # skip one frame
    assert stackid(5) == neg(EFAULT)  # skipped them all


def test_time_identity_cpu_random():
    vm = VM(pid=11, tgid=22, uid=33, gid=44, cpu=1, ncpus=2, ktime_ns=500, ktime_step=10, seed=3)

    def call(name: str) -> int:
        return vm.run(vm.load(f"call {name}\nexit"))

    assert call("get_current_pid_tgid") == 22 << 32 | 11
    assert call("get_current_uid_gid") == 44 << 32 | 33
    assert call("get_smp_processor_id") == 1
    assert [call("ktime_get_ns") for _ in range(3)] == [500, 510, 520]
    vm.ktime_ns = 7
    assert call("ktime_get_boot_ns") == 7
    first = [call("get_prandom_u32") for _ in range(4)]
    again = VM(seed=3)
    assert first == [again.run(again.load("call get_prandom_u32\nexit")) for _ in range(4)]
    assert all(0 <= x < 1 << 32 for x in first) and len(set(first)) > 1


def test_get_current_comm():
    vm = VM(comm="a-very-long-command-name")
    out = vm.create_map("array", 4, 16, 1)
    prog = vm.load(f"""
        ld_pseudo r1, 2, {out.fd}, 0
        r2 = 16
        call get_current_comm
        exit
    """)
    assert vm.run(prog) == 0
    assert out.lookup_raw(b"\0" * 4) == b"a-very-long-com\0"


def test_probe_read_family():
    vm = VM()
    vm.map_memory(0x7FFF_0000, b"hello\0world", name="user strings")
    out = vm.create_map("array", 4, 16, 1)

    def read(helper: str, addr: int, size: int) -> tuple[int, bytes]:
        prog = vm.load(f"""
            ld_pseudo r1, 2, {out.fd}, 0
            r2 = {size}
            r3 = {addr} ll
            call {helper}
            exit
        """)
        out[0] = b"\xee" * 16
        r0 = vm.run(prog)
        return r0, out.lookup_raw(b"\0" * 4)[:size]

    assert read("probe_read_user", 0x7FFF_0000, 5) == (0, b"hello")
    assert read("probe_read_kernel", 0x7FFF_0006, 5) == (0, b"world")
    assert read("probe_read", 0x7FFF_0008, 5) == (neg(EFAULT), bytes(5))
    assert read("probe_read_user_str", 0x7FFF_0000, 16) == (6, b"hello\0" + b"\xee" * 10)
    assert read("probe_read_kernel_str", 0x7FFF_0000, 3) == (3, b"he\0")
    assert read("probe_read_str", 0x1234, 4) == (neg(EFAULT), bytes(4))
    assert read("probe_read_user", MEM_BASE, 1)[0] == neg(EFAULT)  # no image this run


def test_map_memory_refuses_the_vm_areas_and_overlaps():
    vm = VM()
    vm.map_memory(0x1000_0000, b"abc")
    with pytest.raises(VMError, match="overlaps"):
        vm.map_memory(0x1000_0002, b"xyz")
    with pytest.raises(VMError, match="VM's own area"):
        vm.map_memory(0x7FF0_0000_0000, b"x")
    vm.map_memory(0x1000_0010, b"def")  # same 64 KiB window, no overlap: the slow path finds it
    assert vm.run(vm.load("r1 = 0x10000011 ll\nr0 = *(u8 *)(r1 + 0)\nexit")) == ord("e")


def test_trace_printk():
    vm = VM()
    fmt = b"x=%d u=%u hex=%lx %%\n\0"
    vm.map_memory(0x5000_0000, fmt + b"str\0")
    prog = vm.load(f"""
        r1 = 0x50000000 ll
        r2 = {len(fmt)}
        r3 = -5
        r4 = -1
        r5 = -1
        call trace_printk
        exit
    """)
    line = "x=-5 u=4294967295 hex=ffffffffffffffff %\n"
    assert vm.run(prog) == len(line)
    assert vm.trace_lines == [line.rstrip("\n")]
    assert format_printk(vm, "%s and %5d|%-4x|%08lx", [0x5000_0000 + len(fmt), 42, 255, 1]) == \
        "str and    42|ff  |00000001"
    assert format_printk(vm, "%lld %hhx %c", [M64, 0x1FF, 65]) == "-1 ff A"
    assert format_printk(vm, "%p %px %s", [0x10, 0x20, 0]) == "0x10 0x20 "
    assert format_printk(vm, "%d %d", [1]) is None
    assert format_printk(vm, "%q", [1]) is None
    bad = vm.load("r1 = 0x50000000 ll\nr2 = 3\ncall trace_printk\nexit")  # not NUL-terminated
    assert vm.run(bad) == neg(EINVAL)
    too_many = vm.load(f"r1 = 0x50000000 ll\nr2 = {len(fmt)}\nr3 = 1\nr4 = 2\nr5 = 3\ncall trace_printk\nexit")
    assert vm.run(too_many) == len("x=1 u=2 hex=3 %\n")


def test_bpf_loop_and_for_each_map_elem_callbacks():
    vm = VM()
    m = vm.create_map("array", key="I", value="Q", max_entries=4)
    for i in range(4):
        m[i] = 10 * i
    b = Builder()
    b.st(8, FP, 0, -8)
    b.mov(R1, 5)
    b.ld_func(R2, "sum_cb")
    b.mov(R3, FP)
    b.add(R3, -8)
    b.mov(R4, 0)
    b.call("loop")
    b.mov(R6, R0)
    b.ld_map_fd(R1, m)
    b.ld_func(R2, "each_cb")
    b.mov(R3, FP)
    b.add(R3, -8)
    b.mov(R4, 0)
    b.call("for_each_map_elem")
    b.lsh(R6, 8)
    b.or_(R6, R0)
    b.ldx(8, R0, FP, -8)
    b.lsh(R0, 16)
    b.or_(R0, R6)
    b.exit()
    b.label("sum_cb")  # (index, ctx): *ctx += index
    b.ldx(8, R3, R2, 0)
    b.add(R3, R1)
    b.stx(8, R2, R3, 0)
    b.mov(R0, 0)
    b.exit()
    b.label("each_cb")  # (map, key, value, ctx): *ctx += *value; stop after key 2
    b.ldx(4, R5, R2, 0)
    b.ldx(8, R6, R3, 0)
    b.ldx(8, R7, R4, 0)
    b.add(R7, R6)
    b.stx(8, R4, R7, 0)
    b.mov(R0, 0)
    b.jne(R5, 2, "more")
    b.mov(R0, 1)
    b.label("more")
    b.exit()
    # loop: 5 iterations summing 0..4 = 10; for_each: elements 0, 1, 2 (it stops at 2) add 0+10+20
    assert vm.run(vm.load(b)) == (10 + 30) << 16 | 5 << 8 | 3


def test_builder_spans_become_source_lines():
    source = "x = 1\ny = x + 41\nreturn y\n"
    b = Builder()
    with b.at((1, 1, 5)):
        b.mov(R0, 1)
    with b.at((2, 1, 10)):
        b.add(R0, 41)
    with b.at((3, 1, 8)):
        b.exit()
    vm = VM()
    prog = vm.load(b, source=source, filename="script.py")
    assert str(prog.lines[1]) == "script.py:2: y = x + 41"
    assert vm.run(prog) == 42


def test_add_helper_and_unknown_map_type():
    vm = VM()
    vm.add_helper("get_current_task", lambda vm, *regs: 0xDEAD)
    assert vm.run(vm.load("call get_current_task\nexit")) == 0xDEAD
    with pytest.raises(VMError, match="lpm_trie maps are not emulated"):
        vm.create_map("lpm_trie", 8, 8, 4)
    with pytest.raises(VMError, match="unknown MapType"):
        vm.create_map("nonsense", 4, 4, 4)
    with pytest.raises(VMError, match="needs key_size"):
        vm.create_map("hash")


def test_helper_bug_is_one_clear_error():
    vm = VM()
    vm.add_helper("get_current_task", lambda vm, *regs: 1 // 0)
    with pytest.raises(VMError, match="instruction 1: internal error: ZeroDivisionError"):
        vm.run(vm.load("r0 = 0\ncall get_current_task\nexit"))


def test_bad_pointer_given_to_a_helper_names_the_helper():
    vm = VM()
    m = vm.create_map("hash", 4, 8, 4)
    with pytest.raises(VMError) as info:
        vm.run(vm.load(f"ld_pseudo r1, 1, {m.fd}\nr2 = 0\ncall map_lookup_elem\nexit"))
    assert str(info.value) == "instruction 3: bpf_map_lookup_elem#1: read of 4 bytes at 0x0: null pointer dereference"
    with pytest.raises(VMError, match="instruction 1: map_lookup_elem: 0x5 is not a map"):
        vm.run(vm.load("r1 = 5\ncall map_lookup_elem\nexit"))
