"""The values a bpftrace script prints, decoded from maps and events.

The runtime decodes raw map bytes into these plain values; the text and JSON
writers turn them into bpftrace 0.17's exact output. Keeping the model apart
from the writers lets the formatting be tested without a kernel.

Integers are Python ints, strings are str, tuples are tuples; the rest are the
small classes below.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any


class Pointer(int):
    """A pointer in a map key, which bpftrace 0.17 prints in hex (``@[0x4d2]``); pointers
    anywhere else (values, tuples, print(), printf's %d) print in decimal."""

    __slots__ = ()

    def __str__(self) -> str:
        return hex(self)

    __repr__ = __str__


class Record(tuple):
    """A record's value (bpftrace 0.25+): a tuple of its fields' values, with their ``names``."""

    names: tuple[str, ...] = ()

    def __new__(cls, values, names):
        self = super().__new__(cls, values)
        self.names = tuple(names)
        return self


class BareJson(str):
    """A string bpftrace 0.17's JSON prints without quotes (a cgroup_path() value): 0.17 mode
    keeps that, byte for byte; today's language quotes it as any string."""


@dataclass(frozen=True)
class Stack:
    """A symbolised stack, already rendered by ``ebpfpy.events.stacks`` (mode, indent, offsets).

    bpftrace prints a stack the same way as a key, a value and a JSON string,
    so the rendered text is all the writers need.
    """

    text: str


@dataclass(frozen=True)
class Avg:
    count: int
    total: int

    @property
    def value(self) -> int:
        # bpftrace divides as integers, truncating toward zero (31/2 -> 15).
        if self.count == 0:
            return 0
        quotient = abs(self.total) // self.count
        return -quotient if self.total < 0 else quotient


@dataclass(frozen=True)
class Stats(Avg):
    """count, average and total, printed together."""


# bpftrace 0.17 finds a value's power of two in five halving steps (16, 8, 4, 2, 1), so
# everything from 2**32 up shares its last bucket, [2G, 4G).
LAST_LOG2_BUCKET = 33


@dataclass(frozen=True)
class Hist:
    """A power-of-two histogram: ``counts[i]`` is bucket ``i`` as bpftrace numbers them.

    Bucket 0 holds negative values, bucket 1 holds 0, and bucket ``k >= 2``
    holds ``[2**(k-2), 2**(k-1))``.
    """

    counts: tuple

    @staticmethod
    def bucket(value: int) -> int:
        if value < 0:
            return 0
        if value == 0:
            return 1
        return min(value.bit_length(), LAST_LOG2_BUCKET - 1) + 1

    @property
    def total(self) -> int:
        return sum(self.counts)

    @classmethod
    def of(cls, *values: int) -> Hist:
        """The histogram of some values, as the kernel side would have counted them."""
        counts = [0] * 66
        for value in values:
            counts[cls.bucket(value)] += 1
        return cls(tuple(counts))


@dataclass(frozen=True)
class LHist:
    """A linear histogram: ``counts[0]`` is below ``min``, ``counts[-1]`` at or above ``max``."""

    min: int
    max: int
    step: int
    counts: tuple
    # counts of buckets past the printed range: 0.17 computes buckets with a positional
    # parameter's value but prints with its number (emit/aggregate.py); they never print,
    # yet count in the total (sorting) and the longest bar, and keep the entry's one row
    hidden: tuple = ()

    @property
    def buckets(self) -> int:
        return (self.max - self.min) // self.step

    @classmethod
    def of(cls, low: int, high: int, step: int, *values: int) -> LHist:
        shape = cls(low, high, step, ())
        counts = [0] * (shape.buckets + 2)
        for value in values:
            counts[shape.bucket(value)] += 1
        return cls(low, high, step, tuple(counts))

    def bucket(self, value: int) -> int:
        if value < self.min:
            return 0
        if value >= self.max:
            return self.buckets + 1
        return (value - self.min) // self.step + 1

    @property
    def total(self) -> int:
        return sum(self.counts) + sum(self.hidden)


# How each map's values print: the kind names the aggregation that filled it.
INTEGER_KINDS = frozenset({"count", "sum", "min", "max", "int"})
AVERAGE_KINDS = frozenset({"avg", "stats"})
HISTOGRAM_KINDS = frozenset({"hist", "lhist"})


@dataclass
class MapData:
    """One map's contents: ``entries`` pairs a key tuple (empty for ``@x``) with its value."""

    name: str
    kind: str
    entries: list = field(default_factory=list)
    keyed: bool = True

    def sorted_entries(self, top: int = 0) -> list:
        """Entries in bpftrace's print order, optionally only the last ``top``.

        Keys are ordered first so that ties keep a stable, readable order; then
        integers sort by value, averages by their mean, histograms by their total
        count; other values (strings, tuples) stay in key order.
        """
        if self.entries and plain_key(self.entries[0][0]):
            # Keys of one map share their shape, so when the first key holds
            # only ints and strings every key does, and the key itself orders
            # exactly as _key_order would, without a tuple per part.
            entries = sorted(self.entries, key=_FIRST)
        else:
            entries = sorted(self.entries, key=lambda kv: _key_order(kv[0]))
        sort_key = _VALUE_ORDER.get(self.kind)
        if sort_key is _identity:
            entries.sort(key=_SECOND)
        elif sort_key is not None:
            entries.sort(key=lambda kv: sort_key(kv[1]))
        if top:
            entries = entries[-top:]
        return entries


class IntColumns(MapData):
    """A count/sum map keyed by one integer, held as two parallel lists of ints.

    The big maps (``@[nsecs] = count()``: 100,000 keys and more) are this
    shape. Sorting and printing straight from the columns skips a key tuple
    and an entry pair per element; ``entries`` and ``sorted_entries`` still
    give the ordinary pairs to anyone who asks (JSON output, ``print`` with a
    divisor). ``keys`` are unique, as in any map.
    """

    def __init__(self, name: str, kind: str, keys: list, values: list, keyed: bool = True):
        self.name = name
        self.kind = kind
        self.keyed = keyed
        self.keys = keys
        self.values = values
        self._entries: list | None = None

    @property
    def entries(self) -> list:  # type: ignore[override]
        if self._entries is None:
            self._entries = [((key,), value) for key, value in zip(self.keys, self.values)]
        return self._entries

    def sorted_order(self, top: int = 0) -> list:
        """Indices into ``keys``/``values`` in print order: by value, ties by key.

        That is the order of ``MapData.sorted_entries`` (keys first, then a
        stable sort by value), as two sorts of indices keyed by plain ints.
        """
        keys, values = self.keys, self.values
        order = sorted(range(len(keys)), key=keys.__getitem__)
        order.sort(key=values.__getitem__)
        return order[-top:] if top else order

    def sorted_columns(self, top: int = 0) -> tuple:
        """(keys, values) in print order (see ``sorted_order``)."""
        order = self.sorted_order(top)
        return list(map(self.keys.__getitem__, order)), list(map(self.values.__getitem__, order))

    def sorted_entries(self, top: int = 0) -> list:
        keys, values = self.sorted_columns(top)
        return [((key,), value) for key, value in zip(keys, values)]


def _key_order(key: Sequence[Any]) -> tuple:
    return tuple((0, part) if isinstance(part, int) else (1, str(part)) for part in key)


def plain_key(key: Sequence[Any]) -> bool:
    """Only ints and strs (not bool-like subclasses that print differently): ordered as is."""
    return all(type(part) is int or type(part) is str for part in key)


def _identity(v: Any) -> Any:
    return v


_FIRST = itemgetter(0)
_SECOND = itemgetter(1)

_VALUE_ORDER = {
    "count": _identity,
    "sum": _identity,
    "min": _identity,
    "max": _identity,
    "int": _identity,
    "avg": lambda v: v.value,
    "stats": lambda v: v.value,
    "hist": lambda v: v.total,
    "lhist": lambda v: v.total,
}


def divide(value: Any, div: int) -> Any:
    """Apply print()'s divisor to an integer or an average (truncating toward zero, as C
    does); other kinds ignore it, as in bpftrace. stats() maps never get here with one:
    bpftrace ignores top and div for them, with a warning."""
    if div and div != 1:
        if type(value) is Avg:
            value = value.value
        if isinstance(value, int):
            quotient = abs(value) // div
            return -quotient if value < 0 else quotient
    return value


def histogram_rows(hist: Any, div: int = 1) -> list[tuple[int, int, int]]:
    """``(bucket, count, shown count)`` for each row bpftrace prints of a hist or lhist.

    Rows run from the lowest to the highest non-empty bucket of the undivided counts.
    print()'s divisor divides only the count a hist shows (its bars and its rows come from
    the undivided ones); an lhist ignores it. All as bpftrace 0.17."""
    counts = hist.counts
    used = [index for index, count in enumerate(counts) if count]
    if not used:
        return [(0, 0, 0)] if getattr(hist, "hidden", ()) else []
    shown = 1 if isinstance(hist, LHist) else div
    return [(index, counts[index], divide(counts[index], shown)) for index in range(used[0], used[-1] + 1)]


def key_of(value: tuple | None) -> tuple:
    return () if value is None else tuple(value)
