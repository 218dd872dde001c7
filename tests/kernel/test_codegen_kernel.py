"""Programs written with the builder and codegen, loaded and run by the real kernel.

Socket filters and raw tracepoints both support BPF_PROG_TEST_RUN, so every program here runs
synchronously and leaves nothing attached. Each "codegen" program has a twin built by hand
without the codegen safety net, which the verifier must reject: that is what shows the emitters
earn their keep.
"""

import ctypes
import os
import re
import struct
from pathlib import Path

import pytest

from ebpfpy.codegen import (
    StackFrame,
    emit_args,
    emit_bounded_index,
    emit_helper_call,
    emit_map_add,
    emit_map_lookup,
    emit_map_update,
    emit_probe_read,
    emit_ringbuf_output,
    emit_ringbuf_reserve,
    emit_ringbuf_submit,
    emit_save_ctx,
)
from ebpfpy.events.ringbuf import RingBuffer
from ebpfpy.isa.builder import FP, R0, R1, R2, R6, R7, R8, R9, Builder
from ebpfpy.maps import Map
from ebpfpy.progs import Program
from ebpfpy.sys.consts import ProgType
from ebpfpy.sys.errors import BPFError, failing_insn

pytestmark = pytest.mark.kernel

# Socket-filter test runs need at least an Ethernet header; the program sees the packet after it.
ETH = bytes(14)
PACKET = ETH + bytes(range(1, 65))


def load(b: Builder, prog_type=ProgType.SOCKET_FILTER, maps=None) -> Program:
    """Build and load (close the program when done)."""
    return Program.load(prog_type, b.build(maps=maps), "GPL", name="ebpfpy_codegen")


def run(prog: Program, data=PACKET, ctx=b"", repeat=0) -> int:
    if ctx:
        return prog.test_run(ctx_in=ctx, repeat=repeat).retval
    return prog.test_run(data_in=data, repeat=repeat).retval


def rejected(b: Builder, prog_type=ProgType.SOCKET_FILTER, maps=None) -> BPFError:
    with pytest.raises(BPFError) as err:
        load(b, prog_type, maps).close()
    assert err.value.command == "BPF_PROG_LOAD" and err.value.log
    return err.value


# --- maps ----------------------------------------------------------------------------------


def counter_program(counts: Map) -> Builder:
    """counts[first 8 bytes after the Ethernet header] += 1, via skb_load_bytes into a stack key."""
    b = Builder()
    ctx = emit_save_ctx(b)
    frame = StackFrame(b)
    key = frame.alloc(8, name="key")
    emit_helper_call(b, "skb_load_bytes", ctx, 0, key, None)
    emit_map_add(frame, counts, key, 1)
    b.mov(R0, 0)
    b.exit()
    return b


def test_map_counter_per_packet_prefix():
    with Map.create("hash", 8, 8, 16, key="=Q", value="=Q") as counts:
        with load(counter_program(counts)) as prog:
            run(prog, repeat=3)  # the first run inserts, the next two add in place
            run(prog, data=ETH + b"\xee" * 8)
        first = struct.unpack("=Q", PACKET[14:22])[0]
        assert dict(counts.items()) == {first: 3, 0xEEEEEEEEEEEEEEEE: 1}


def test_map_update_then_lookup_by_name():
    """Maps referenced by name resolve at build time; the value written is read back."""
    b = Builder()
    frame = StackFrame(b)
    key = frame.alloc(4, name="key")
    value = frame.alloc(8, zero=False, name="value")
    b.ld_imm64(R1, 0x1122334455667788)
    b.stx(8, FP, R1, value.off)
    emit_map_update(b, "store", key, value)
    emit_map_lookup(b, "store", key, on_null="missing")
    b.ldx(4, R0, R0, 0)  # low half of the value: 0x55667788
    b.exit()
    b.label("missing")
    b.mov(R0, 1)
    b.exit()
    with Map.create("array", 4, 8, 1, value="=Q") as store:
        with load(b, maps={"store": store}) as prog:
            assert run(prog) == 0x55667788
        assert store[0] == 0x1122334455667788


def test_missing_null_check_is_rejected_and_points_at_its_source():
    b = Builder()
    b.st(8, FP, 0, -8)
    b.ld_map_fd(R1, "m")
    b.mov(R2, FP)
    b.add(R2, -8)
    b.call("map_lookup_elem")
    with b.at((3, 5, 12)):
        b.ldx(8, R0, R0, 0)  # no null check: the verifier must refuse this
    b.exit()
    with Map.create("array", 4, 8, 1) as m:
        err = rejected(b, maps={"m": m})
        b.build(maps={"m": m})
    assert "map_value_or_null" in err.log
    assert b.spans[failing_insn(err.log)] == (3, 5, 12)


def reused_key_program(zero: bool) -> Builder:
    """Write 0xff bytes into a scoped slot, then reuse its bytes as a key whose u32 is set."""
    b = Builder()
    frame = StackFrame(b)
    with frame.scope():
        scratch = frame.alloc(8, zero=False, name="scratch")
        b.st(8, FP, -1, scratch.off)
    key = frame.alloc(8, zero=zero, name="key")  # {u32 id; 4 bytes padding}
    value = frame.alloc(8, zero=False, name="value")
    assert key.off == scratch.off
    b.st(4, FP, 42, key.off)
    b.st(8, FP, 1, value.off)
    emit_map_update(b, "m", key, value)
    b.mov(R0, 0)
    b.exit()
    return b


@pytest.mark.parametrize("zero", [True, False])
def test_zeroed_keys_have_no_stale_padding(zero):
    """A hash map hashes every key byte: stale padding makes a different key than user space's."""
    with Map.create("hash", 8, 8, 4, value="=Q") as m:
        with load(reused_key_program(zero), maps={"m": m}) as prog:
            run(prog)
        keys = m.keys()
    assert keys == [struct.pack("=II", 42, 0 if zero else 0xFFFFFFFF)]


def test_stack_beyond_512_bytes_is_rejected_by_the_kernel_and_by_the_frame():
    b = Builder()
    b.st(8, FP, 0, -520)
    b.mov(R0, 0)
    b.exit()
    err = rejected(b)
    assert re.search(r"invalid (write to )?stack", err.log)
    frame = StackFrame(Builder())
    frame.alloc(512, zero=False)
    with pytest.raises(ValueError, match="does not fit the BPF stack"):
        frame.alloc(8)


def test_ld_map_value_and_ld_imm64_reach_the_kernel_intact():
    """Direct value access at an offset, storing a constant that needs all 64 bits."""
    b = Builder()
    b.ld_imm64(R2, 0x8877665544332211)
    b.ld_map_value(R1, "globals", 8)
    b.stx(8, R1, R2, 0)
    b.ldx(4, R0, R1, -8)  # bytes 0..3 of the value, set from user space
    b.exit()
    with Map.create("array", 4, 16, 1) as globals_:
        globals_[0] = struct.pack("=QQ", 1234, 0)
        with load(b, maps={"globals": globals_}) as prog:
            assert run(prog) == 1234
        assert struct.unpack("=QQ", globals_[0]) == (1234, 0x8877665544332211)


@pytest.mark.ringbuf
def test_ring_buffer_output_and_reserve_submit():
    b = Builder()
    frame = StackFrame(b)
    record = frame.alloc(16, name="record")
    b.st(8, FP, 0x1111, record.off)
    b.st(8, FP, 0x2222, record.off + 8)
    emit_ringbuf_output(b, "events", record)
    ptr = emit_ringbuf_reserve(b, "events", 8, on_null="full")
    b.mov(R6, ptr)
    b.st(8, R6, 0x3333, 0)
    emit_ringbuf_submit(b, R6)
    b.label("full")
    b.mov(R0, 0)
    b.exit()
    got = []
    with Map.create("ringbuf", 0, 0, 4096) as events:
        with load(b, maps={"events": events}) as prog:
            run(prog)
        with RingBuffer(events, got.extend) as rb:
            rb.consume()
    assert got == [struct.pack("=QQ", 0x1111, 0x2222), struct.pack("=Q", 0x3333)]


def test_ringbuf_record_leaked_on_a_path_is_rejected():
    """Without the submit the reservation leaks; the verifier refuses to let it."""
    b = Builder()
    emit_ringbuf_reserve(b, "events", 8, on_null="full")
    b.label("full")
    b.mov(R0, 0)
    b.exit()
    with Map.create("ringbuf", 0, 0, 4096) as events:
        err = rejected(b, maps={"events": events})
    assert re.search(r"Unreleased reference", err.log)


# --- control flow ----------------------------------------------------------------------------


def test_subprogram_call_with_parallel_argument_moves():
    b = Builder()
    b.mov(R6, 100)
    b.mov(R7, 7)
    b.mov(R1, 1)  # clobbered by the argument moves below
    emit_args(b, (R7, R6))  # r1 = 7, r2 = 100
    b.call_local("combine")
    b.exit()
    b.label("combine")  # r0 = r1 * 1000 + r2, so the order of the arguments shows
    b.mov(R0, R1)
    b.mul(R0, 1000)
    b.add(R0, R2)
    b.exit()
    with load(b) as prog:
        assert run(prog) == 7 * 1000 + 100


def test_swapped_register_arguments_survive_the_move():
    b = Builder()
    b.mov(R1, 3)
    b.mov(R2, 5)
    emit_args(b, (R2, R1))  # a cycle: broken through r0
    b.call_local("f")
    b.exit()
    b.label("f")
    b.mov(R0, R1)
    b.mul(R0, 10)
    b.add(R0, R2)
    b.exit()
    with load(b) as prog:
        assert run(prog) == 53


def table_lookup_program(table: Map, bounded: str) -> Builder:
    """Sum table[packet[j]] for j < 8 with a counted loop; the index is bounded by ``bounded``."""
    b = Builder()
    emit_save_ctx(b)  # ld_abs reads the packet through r6
    frame = StackFrame(b)
    key = frame.alloc(4, name="key")
    emit_map_lookup(b, table, key, on_null="fail")
    b.mov(R7, R0)  # value pointer, kept across ld_abs (which clobbers r1-r5)
    b.mov(R8, 0)   # j
    b.mov(R9, 0)   # sum
    b.label("loop")
    b.ld_ind(1, R8, 0)  # r0 = packet[j]
    if bounded == "mask":
        emit_bounded_index(b, R0, 64)
    elif bounded == "branch":
        emit_bounded_index(b, R0, 64, out="next")
    b.mov(R1, R7)
    b.add(R1, R0)
    b.ldx(1, R1, R1, 0)
    b.add(R9, R1)
    b.label("next")
    b.add(R8, 1)
    b.jlt(R8, 8, "loop")
    b.mov(R0, R9)
    b.exit()
    b.label("fail")
    b.mov(R0, 0)
    b.exit()
    return b


@pytest.mark.parametrize("bounded", ["mask", "branch"])
def test_loop_with_bounded_index(bounded):
    indexes = bytes([1, 5, 70, 63, 64, 200, 0, 2])
    packet = ETH + indexes
    contents = bytes((3 * i + 1) % 256 for i in range(64))
    with Map.create("array", 4, 64, 1) as table:
        table[0] = contents
        with load(table_lookup_program(table, bounded)) as prog:
            got = run(prog, data=packet)
    if bounded == "mask":
        want = sum(contents[x & 63] for x in indexes)
    else:
        want = sum(contents[x] for x in indexes if x < 64)
    assert got == want


def test_loop_with_unbounded_index_is_rejected():
    with Map.create("array", 4, 64, 1) as table:
        err = rejected(table_lookup_program(table, "none"))
    assert re.search(r"unbounded|max value is outside|invalid access to map value", err.log)


# --- tracing helpers (raw tracepoint test runs execute in this process) ------------------------


def test_stack_buffers_filled_by_tracing_helpers():
    secret = ctypes.create_string_buffer(b"ebpfpy reads me\0tail", 24)
    b = Builder()
    ctx = emit_save_ctx(b)
    frame = StackFrame(b)
    key = frame.alloc(4, name="key")
    record = frame.alloc(40, zero=True, name="record")  # comm[16] | copy[16] | pid_tgid
    emit_helper_call(b, "get_current_comm", record.field(0, 16), None)
    b.ldx(8, R7, ctx, 0)  # args[0] of the test run: the user address to read
    emit_probe_read(b, record.field(16, 16), R7, space="user", string=True)
    b.mov(R8, R0)  # bytes copied, NUL included
    emit_helper_call(b, "get_current_pid_tgid")
    b.stx(8, FP, R0, record.off + 32)
    emit_map_update(b, "out", key, record)
    b.mov(R0, R8)
    b.exit()
    with Map.create("array", 4, 40, 1) as out:
        with load(b, ProgType.RAW_TRACEPOINT, maps={"out": out}) as prog:
            copied = run(prog, ctx=struct.pack("=Q", ctypes.addressof(secret)))
        raw = out[0]
    comm = Path("/proc/self/comm").read_bytes().strip()
    assert raw[:16].rstrip(b"\0") == comm[:15]
    assert raw[16:32] == b"ebpfpy reads me\0"
    assert copied == 16
    assert struct.unpack("=Q", raw[32:])[0] == (os.getpid() << 32) | _thread_id()


def _thread_id() -> int:
    import threading

    return threading.get_native_id()
