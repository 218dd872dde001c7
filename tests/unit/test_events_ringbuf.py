"""Ring buffer parsing on synthetic rings laid out as kernel/bpf/ringbuf.c maps them."""
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebpfpy.events.ringbuf import (
    BPF_RINGBUF_BUSY_BIT,
    BPF_RINGBUF_DISCARD_BIT,
    RingReader,
)

PAGE = 4096


class FakeKernelRingbuf:
    """A producer following the kernel's protocol: reserve (header BUSY),
    write, then commit (clear BUSY, maybe set DISCARD). The data area is
    written at both of its mappings, as the kernel's double mapping shows it."""

    def __init__(self, size=256):
        self.size = size
        self.consumer = bytearray(PAGE)
        self.producer = bytearray(PAGE + 2 * size)
        self.prod = 0

    def _write(self, pos, data):
        for i, b in enumerate(data):
            off = (pos + i) % self.size
            self.producer[PAGE + off] = b
            self.producer[PAGE + self.size + off] = b

    def reserve(self, payload):
        pos = self.prod
        self._write(pos, struct.pack("<II", len(payload) | BPF_RINGBUF_BUSY_BIT, 0))
        self._write(pos + 8, payload)
        self.prod += (len(payload) + 15) & ~7
        struct.pack_into("<Q", self.producer, 0, self.prod)
        return pos

    def commit(self, pos, payload, discard=False):
        flag = BPF_RINGBUF_DISCARD_BIT if discard else 0
        self._write(pos, struct.pack("<I", len(payload) | flag))

    def output(self, payload, discard=False):
        self.commit(self.reserve(payload), payload, discard)

    @property
    def consumed(self):
        return struct.unpack_from("<Q", self.consumer, 0)[0]


def reader(k):
    return RingReader(k.consumer, k.producer, k.size, data_offset=PAGE)


def test_records_and_alignment():
    k = FakeKernelRingbuf()
    r = reader(k)
    k.output(b"abc")
    k.output(b"12345678")
    k.output(b"")
    assert r.read() == [b"abc", b"12345678", b""]
    assert k.consumed == 16 + 16 + 8 == k.prod
    assert r.pending() == 0
    assert r.read() == []


def test_busy_record_stops_the_batch_until_committed():
    k = FakeKernelRingbuf()
    r = reader(k)
    k.output(b"first")
    pos = k.reserve(b"second")
    k.output(b"third")  # committed, but after a busy one: must wait
    assert r.read() == [b"first"]
    assert r.pending() > 0
    k.commit(pos, b"second")
    assert r.read() == [b"second", b"third"]


def test_discarded_records_are_skipped_and_counted():
    k = FakeKernelRingbuf()
    r = reader(k)
    k.output(b"keep1")
    k.output(b"drop", discard=True)
    k.output(b"keep2")
    assert r.read() == [b"keep1", b"keep2"]
    assert r.discarded == 1
    assert k.consumed == k.prod


def test_record_wrapping_the_end_is_read_through_the_double_mapping():
    k = FakeKernelRingbuf(size=64)
    r = reader(k)
    k.output(b"x" * 40)  # 48 bytes
    assert r.read() == [b"x" * 40]
    k.output(bytes(range(30)))  # header at 48, data runs past 64
    assert r.read() == [bytes(range(30))]
    assert k.consumed == 48 + 40


def test_size_must_be_a_power_of_two():
    with pytest.raises(ValueError):
        RingReader(bytearray(PAGE), bytearray(PAGE * 3), 100)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.binary(max_size=30), st.booleans()), max_size=4),
        min_size=1,
        max_size=30,
    )
)
def test_any_sequence_round_trips(batches):
    k = FakeKernelRingbuf(size=256)
    r = reader(k)
    got, sent, dropped = [], [], 0
    for batch in batches:
        for payload, discard in batch:
            k.output(payload, discard)
            if discard:
                dropped += 1
            else:
                sent.append(payload)
        got += r.read()
    assert got == sent
    assert r.discarded == dropped
