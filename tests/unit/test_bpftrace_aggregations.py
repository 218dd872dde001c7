"""The per-CPU folds of ebpfpy.bpftrace.aggregations: how the runtime turns each CPU's
copy of an aggregation into the number bpftrace 0.17 prints."""
import struct

import pytest

from ebpfpy.bpftrace.aggregations import AGGREGATIONS, MIN_BIAS


def cpus(*values):
    return [struct.pack("<q", v) for v in values]


def fold(kind, *values):
    return AGGREGATIONS[kind].fold(cpus(*values))


@pytest.mark.parametrize("values,expected", [
    ((0, 7, 3), 7),          # CPUs that never stored hold 0
    ((0, 0), 0),
    ((5,), 5),
    ((1 << 40, 2), 1 << 40),
])
def test_max_is_the_largest_copy(values, expected):
    assert fold("max", *values) == expected


@pytest.mark.parametrize("stored,expected", [
    ((0, MIN_BIAS - 5, MIN_BIAS - 3), 3),   # the largest biased copy is the smallest value
    ((MIN_BIAS + 4, MIN_BIAS - 2), -4),    # negatives are stored above the bias
    ((0, 0), 0),                           # never stored, or zero()
    ((MIN_BIAS,), 0),                      # min(0)
])
def test_min_undoes_the_bias(stored, expected):
    assert fold("min", *stored) == expected


def test_min_and_max_keep_one_i64_per_cpu():
    assert AGGREGATIONS["min"].value_size == AGGREGATIONS["max"].value_size == 8
