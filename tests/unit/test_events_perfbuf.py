"""Perf ring parsing on synthetic rings laid out as the kernel maps them."""
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebpfpy.events.perfbuf import (
    PERF_RECORD_LOST,
    PERF_RECORD_SAMPLE,
    PerfRing,
    parse_records,
)

PAGE = 4096


class FakeKernelRing:
    """Writes records the way perf_output_*() does: at data_head modulo the
    ring size, wrapping byte-wise, then publishes the new data_head."""

    def __init__(self, data_size=PAGE, *, set_layout=True):
        self.size = data_size
        self.buf = bytearray(PAGE + data_size)
        if set_layout:
            struct.pack_into("<QQ", self.buf, 1040, PAGE, data_size)
        self.head = 0

    def _put(self, data: bytes) -> None:
        for i, b in enumerate(data):
            self.buf[PAGE + (self.head + i) % self.size] = b
        self.head += len(data)

    def sample(self, payload: bytes, publish=True) -> None:
        raw_size = -(-(4 + len(payload)) // 8) * 8 - 4  # kernel pads u32 size + data to 8
        padded = payload + bytes(raw_size - len(payload))
        self._put(struct.pack("<IHHI", PERF_RECORD_SAMPLE, 0, 8 + 4 + raw_size, raw_size) + padded)
        if publish:
            self.publish()

    def lost(self, count: int) -> None:
        self._put(struct.pack("<IHHQQ", PERF_RECORD_LOST, 0, 24, 77, count))
        self.publish()

    def other(self) -> None:
        self._put(struct.pack("<IHHQQ", 5, 0, 24, 1, 2))  # PERF_RECORD_THROTTLE
        self.publish()

    def publish(self) -> None:
        struct.pack_into("<Q", self.buf, 1024, self.head)

    @property
    def tail(self):
        return struct.unpack_from("<Q", self.buf, 1032)[0]


def test_samples_in_order_with_kernel_padding():
    k = FakeKernelRing()
    ring = PerfRing(k.buf)
    k.sample(b"A" * 24)
    k.sample(b"xyz")
    samples, lost = ring.read()
    assert lost == 0
    # 4 + 24 rounds to 32: 28 bytes delivered, the tail zero padding.
    assert samples == [b"A" * 24 + bytes(4), b"xyz" + bytes(1)]
    assert k.tail == k.head
    assert ring.read() == ([], 0)


def test_unpublished_records_are_not_read():
    k = FakeKernelRing()
    ring = PerfRing(k.buf)
    k.sample(b"one")
    k.sample(b"two", publish=False)
    assert ring.read()[0] == [b"one\0"]
    k.publish()
    assert ring.read()[0] == [b"two\0"]


def test_record_straddling_the_end_of_the_ring():
    k = FakeKernelRing(data_size=64)
    ring = PerfRing(k.buf)
    k.sample(b"a" * 36)  # 48 bytes
    assert ring.read()[0] == [b"a" * 36]
    k.sample(bytes(range(36)))  # starts at 48, wraps to 32
    assert k.head % 64 < 48
    assert ring.read()[0] == [bytes(range(36))]


def test_header_split_by_the_end_of_the_ring():
    k = FakeKernelRing(data_size=64)
    ring = PerfRing(k.buf)
    k._put(b"\0" * 60)  # pretend older data, then consume it
    struct.pack_into("<Q", k.buf, 1032, 60)
    k.sample(b"hello world!")  # header bytes 60..67 wrap after 4 bytes
    assert ring.read() == ([b"hello world!"], 0)


def test_lost_records_are_summed_and_other_types_skipped():
    k = FakeKernelRing()
    ring = PerfRing(k.buf)
    k.sample(b"1234")
    k.lost(5)
    k.other()
    k.sample(b"5678")
    k.lost(2)
    samples, lost = ring.read()
    assert samples == [b"1234", b"5678"]  # 4 + 4 bytes: no padding
    assert lost == 7


def test_layout_fallback_for_old_kernels():
    k = FakeKernelRing(data_size=2 * PAGE, set_layout=False)
    ring = PerfRing(k.buf)
    assert (ring.data_offset, ring.data_size) == (PAGE, 2 * PAGE)


def test_parse_records_stops_on_a_corrupt_header():
    chunk = struct.pack("<IHHI", PERF_RECORD_SAMPLE, 0, 0, 0) + bytes(16)
    assert parse_records(chunk) == ([], 0, 0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.binary(min_size=0, max_size=40), min_size=0, max_size=6),
        min_size=1,
        max_size=30,
    )
)
def test_any_sequence_of_batches_round_trips(batches):
    """Whatever the sizes, wrap positions and batching, every payload comes
    out once, in order (modulo the kernel's padding)."""
    k = FakeKernelRing(data_size=256)
    ring = PerfRing(k.buf)
    got, sent = [], []
    for batch in batches:
        for payload in batch:
            k.sample(payload)
            sent.append(payload)
        samples, lost = ring.read()
        assert lost == 0
        got += samples
    assert len(got) == len(sent)
    for g, s in zip(got, sent):
        assert g[: len(s)] == s and not any(g[len(s):]) and (len(g) + 4) % 8 == 0


def test_ring_size_must_be_a_power_of_two():
    from ebpfpy.events.perfbuf import PerfBuffer

    with pytest.raises(ValueError):
        PerfBuffer(None, lambda cpu, recs: None, pages=3)
