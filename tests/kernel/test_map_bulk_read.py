"""Bulk map reads: Map.raw_blobs and the runtime's int-column decoding, against a real per-CPU map."""
import struct

import pytest

from ebpfpy.bpftrace import mapread
from ebpfpy.bpftrace.compiled import MapPlan
from ebpfpy.bpftrace.output.values import IntColumns
from ebpfpy.bpftrace.shapes import Shape
from ebpfpy.maps import Map
from ebpfpy.sys import bpf

pytestmark = pytest.mark.kernel


@pytest.fixture
def counts():
    """A per-CPU hash of u64 keys to i64 counts, each CPU's slot holding a different number."""
    m = Map.create("percpu_hash", 8, 8, 300000)
    try:
        n = m.ncpus
        keys = [struct.pack("<Q", 2**63 + i * 7919) for i in range(70000)]  # > one 64K batch
        values = [b"".join(struct.pack("<q", (i % 5) - 2 + cpu) for cpu in range(n)) for i in range(len(keys))]
        bpf.map_update_batch(m, keys, values)
        yield m, keys, values
    finally:
        m.close()


def test_raw_blobs_match_raw_columns(counts):
    m, keys, values = counts
    key_blob, value_blob, n = m.raw_blobs()
    col_keys, col_values = m.raw_columns()
    assert n == len(keys) == len(col_keys)
    assert key_blob == b"".join(col_keys) and value_blob == b"".join(col_values)
    assert sorted(zip(col_keys, col_values)) == sorted(zip(keys, values))


@pytest.mark.parametrize("signed", [False, True])
def test_int_columns_decode_like_the_per_entry_path(counts, signed):
    m, keys, values = counts
    plan = MapPlan(name="@x", map_type="percpu_hash", key_size=8, value_size=8, max_entries=300000,
                   kind="count", key_shapes=(Shape("int", 8, signed=signed),))
    assert mapread._int_column_map(plan, m)
    data = mapread._read_int_columns(plan, m)
    assert isinstance(data, IntColumns)
    fmt = "<q" if signed else "<Q"
    want = {struct.unpack(fmt, k)[0]: sum(struct.unpack(f"<{m.ncpus}q", v)) for k, v in zip(keys, values)}
    assert dict(zip(data.keys, data.values)) == want
