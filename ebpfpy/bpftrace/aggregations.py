"""Map aggregations (count, sum, min, max, avg, stats, hist, lhist) as a table.

Each row says how the per-CPU value is laid out and how the runtime folds the
per-CPU copies into the one number bpftrace prints. Aggregations live in
per-CPU hash maps, as in bpftrace, so the hot path never contends for a
cache line between CPUs.
"""
from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from .output.values import Avg, Stats

_I64 = struct.Struct("<q")
_PAIR = struct.Struct("<qq")


def _sum(values: list) -> int:
    return sum(_I64.unpack_from(v)[0] for v in values)


# bpftrace 0.17 keeps min() as MIN_BIAS - value, so that min and max share one
# update rule (store when new >= old, signed, a missing entry counting as 0)
# and one fold (the largest per-CPU copy). See BpfCodegen.emit_extreme.
MIN_BIAS = 0xFFFFFFFF


def _max(values: list) -> int:
    """The largest per-CPU copy; a CPU that never stored holds 0, which is also the floor."""
    return max(max(_I64.unpack_from(v)[0] for v in values), 0)


def _min(values: list) -> int:
    """Undo the bias of the largest copy; all zero (never stored, or zero()) prints 0."""
    top = _max(values)
    return MIN_BIAS - top if top else 0


def _average(cls) -> Callable:
    def fold(values: list):
        count = total = 0
        for v in values:
            c, t = _PAIR.unpack_from(v)
            count += c
            total += t
        return cls(count, total)
    return fold


@dataclass(frozen=True)
class Aggregation:
    name: str
    value_size: int
    fold: Callable[[list], object]
    bucketed: bool = False  # one map entry per (key, bucket)


AGGREGATIONS = {
    "count": Aggregation("count", 8, _sum),
    "sum": Aggregation("sum", 8, _sum),
    "min": Aggregation("min", 8, _min),  # MIN_BIAS - value
    "max": Aggregation("max", 8, _max),
    "avg": Aggregation("avg", 16, _average(Avg)),  # {count, total}
    "stats": Aggregation("stats", 16, _average(Stats)),
    "hist": Aggregation("hist", 8, _sum, bucketed=True),
    "lhist": Aggregation("lhist", 8, _sum, bucketed=True),
}
