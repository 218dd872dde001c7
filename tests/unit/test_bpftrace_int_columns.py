"""IntColumns (the bulk form of big count/sum maps) prints and sorts exactly like the MapData pairs."""
import random

import pytest

from ebpfpy.bpftrace.output import jsonfmt, text
from ebpfpy.bpftrace.output.values import IntColumns, MapData


def _both(name, kind, keys, values):
    return (IntColumns(name, kind, list(keys), list(values)),
            MapData(name, kind, [((k,), v) for k, v in zip(keys, values)]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_text_and_order_as_pairs(seed):
    rnd = random.Random(seed)
    keys = list({rnd.randrange(-2**63, 2**63) for _ in range(2000)} | {0, -1, 2**63 - 1})
    rnd.shuffle(keys)
    values = [rnd.choice([1, 1, 2, 3, -5, 2**62, -2**63]) for _ in keys]
    cols, pairs = _both("@m", "count", keys, values)
    assert text.format_map(cols) == text.format_map(pairs)
    assert cols.sorted_entries() == pairs.sorted_entries()
    assert cols.entries == pairs.entries


def test_top_divisor_json_and_empty():
    cols, pairs = _both("@c", "sum", [30, 10, 20, 40], [5, 5, 1, 7])
    assert text.format_map(cols, top=2) == text.format_map(pairs, top=2) == "@c[30]: 5\n@c[40]: 7\n"
    assert text.format_map(cols, div=2) == text.format_map(pairs, div=2)
    assert jsonfmt.map_json(cols, 0, 1) == jsonfmt.map_json(pairs, 0, 1)
    empty, empty_pairs = _both("@e", "count", [], [])
    assert text.format_map(empty) == text.format_map(empty_pairs) == "\n"


def test_percent_in_a_name_is_not_a_format():
    cols, pairs = _both("@a%d", "count", [1], [2])
    assert text.format_map(cols) == text.format_map(pairs) == "@a%d[1]: 2\n"
