"""Reading a script's maps in bulk: whole per-CPU count/sum/hist maps as columns of ints, keys of
64-bit integers in one unpack, histogram buckets regrouped per key.

The runtime prints maps that can hold many thousands of entries at exit; decoding them one
entry at a time through ``MapPlan.decode_key``/``decode_value`` costs seconds, these paths
give the same values from the joined batch bytes.
"""
from __future__ import annotations

import operator
import struct

from ebpfpy.maps import Map

from .aggregations import AGGREGATIONS
from .compiled import MapPlan
from .output.values import Hist, IntColumns, LHist

# Aggregations whose per-CPU value is one i64 and whose fold adds the CPUs up
# (count, sum, hist, lhist), read from the table so the two cannot drift.
_SUMMED_KINDS = frozenset(name for name, agg in AGGREGATIONS.items()
                          if agg.value_size == 8 and agg.fold is AGGREGATIONS["sum"].fold)
_SUMS: dict[int, struct.Struct] = {}


def _summed_values(plan: MapPlan, m: Map, raw_values: list) -> list | None:
    """count/sum/hist values of a whole per-CPU map at once, or None for other maps.

    One ``iter_unpack`` over the joined batch replaces a split into per-CPU
    slices and a fold call per entry; the arithmetic is the same sum of i64s.
    """
    if plan.kind not in _SUMMED_KINDS or not m.props.percpu or plan.value_size != 8:
        return None
    ncpus = m.ncpus
    fmt = _SUMS.get(ncpus)
    if fmt is None:
        fmt = _SUMS[ncpus] = struct.Struct(f"<{ncpus}q")
    if m.user_value_size != fmt.size:
        return None
    blob = b"".join(raw_values)
    if ncpus == 1:
        values = [v for (v,) in fmt.iter_unpack(blob)]
    else:
        values = [sum(cpus) for cpus in fmt.iter_unpack(blob)]
    return _as_unsigned(values) if plan.unsigned_values else values


def _as_unsigned(values: list) -> list:
    """Totals of an unsigned sum(), as plan.decode_value gives them one at a time."""
    return [v % (1 << 64) for v in values]


def _int_column_map(plan: MapPlan, m: Map) -> bool:
    """A per-CPU count/sum map keyed by one 64-bit integer: the shape of the big maps, read in bulk."""
    shapes = plan.key_shapes
    return (plan.kind in _SUMMED_KINDS and plan.keyed and not plan.bucket_key and plan.value_size == 8
            and len(shapes) == 1 and shapes[0].kind in ("int", "none") and shapes[0].size == 8
            and shapes[0].extra != "bool"
            and m.key_size == 8 and m.props.percpu and m.user_value_size == 8 * m.ncpus)


def _read_int_columns(plan: MapPlan, m: Map) -> IntColumns:
    """Keys and per-CPU sums as two lists of ints, straight from the joined batch bytes.

    ``memoryview.cast`` turns the bytes into ints in C (native byte order, as
    the kernel stores them); the CPUs' columns are added with ``map(add)``.
    No per-entry bytes, tuple or struct call is made.
    """
    key_blob, value_blob, _ = m.raw_blobs()
    keys = memoryview(key_blob).cast("q" if plan.key_shapes[0].signed else "Q").tolist()
    cells = memoryview(value_blob).cast("q").tolist()
    ncpus = m.ncpus
    values = cells[0::ncpus] if ncpus > 1 else cells
    for cpu in range(1, ncpus):
        values = list(map(operator.add, values, cells[cpu::ncpus]))
    if plan.unsigned_values:
        values = _as_unsigned(values)
    return IntColumns(plan.name, plan.kind, keys, values, keyed=plan.keyed)


def _int_keys(plan: MapPlan, raw_keys: list) -> list | None:
    """Keys made only of 64-bit integers, decoded in one ``iter_unpack``; None otherwise.

    Needs the key's shapes on the plan (``plan.key_shapes``, set by the
    compiler when it has them); without them every key goes through
    ``plan.decode_key``, which gives the same tuples one call at a time.
    """
    key_shapes = plan.key_shapes
    if not key_shapes or not raw_keys:
        return None
    if any(s.kind not in ("int", "none") or s.size != 8 or s.extra == "bool" for s in key_shapes):
        return None
    fmt = struct.Struct("<" + "".join("q" if s.signed else "Q" for s in key_shapes))
    if len(raw_keys[0]) < fmt.size:
        return None
    stride = len(raw_keys[0])
    blob = b"".join(raw_keys)
    if stride == fmt.size:
        return list(fmt.iter_unpack(blob))
    unpack = fmt.unpack_from
    return [unpack(blob, off) for off in range(0, len(blob), stride)]


def _fold_buckets(plan: MapPlan, entries: list) -> list:
    """Histogram maps hold one entry per (key, bucket); regroup them into one Hist per key."""
    grouped: dict[tuple, dict[int, int]] = {}
    for key, count in entries:
        *user_key, bucket = key
        grouped.setdefault(tuple(user_key), {})[bucket] = count
    out = []
    for key, buckets in grouped.items():
        size = max(buckets) + 1
        if plan.lhist:
            low, high, step = plan.lhist
            size = (high - low) // step + 2
        counts = [0] * size
        hidden = []
        for bucket, count in buckets.items():
            if bucket < size:
                counts[bucket] = count
            else:
                hidden.append(count)
        hist = LHist(*plan.lhist, tuple(counts), tuple(hidden)) if plan.lhist else Hist(tuple(counts))
        out.append((key, hist))
    return out
