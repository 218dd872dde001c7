"""Map aggregations (count, sum, min, max, avg, stats, hist, lhist) as a table.

Each row says how the per-CPU value is laid out and how the runtime folds the
per-CPU copies into the one number bpftrace prints. Aggregations live in
per-CPU hash maps, as in bpftrace, so the hot path never contends for a
cache line between CPUs.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable

from .output.values import Avg, Stats

_I64 = struct.Struct("<q")
_PAIR = struct.Struct("<qq")


def _sum(values: list) -> int:
    return sum(_I64.unpack_from(v)[0] for v in values)


def _extreme(pick: Callable) -> Callable:
    def fold(values: list) -> int:
        seen = [value for value, is_set in (_PAIR.unpack_from(v) for v in values) if is_set]
        return pick(seen) if seen else 0
    return fold


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
    "min": Aggregation("min", 16, _extreme(min)),  # {value, is_set}
    "max": Aggregation("max", 16, _extreme(max)),
    "avg": Aggregation("avg", 16, _average(Avg)),  # {count, total}
    "stats": Aggregation("stats", 16, _average(Stats)),
    "hist": Aggregation("hist", 8, _sum, bucketed=True),
    "lhist": Aggregation("lhist", 8, _sum, bucketed=True),
}
