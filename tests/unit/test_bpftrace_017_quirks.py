"""bpftrace 0.17's output quirks found on scripts we did not write (issue #12), without a kernel.

Each expected text was observed from the installed bpftrace 0.17; the differential corpus
(tests/differential/corpus/scripts.py) checks the same against it end to end.
"""
import json

from hypothesis import given
from hypothesis import strategies as st

from ebpfpy.bpftrace import shapes
from ebpfpy.bpftrace.output import jsonfmt, text
from ebpfpy.bpftrace.output.values import LHist, MapData, Pointer, Stats


def test_pointer_keys_print_in_hex_and_values_in_decimal():
    data = MapData("@", "int", [((Pointer(1234),), 1234), ((Pointer(0), 7), 5)])
    assert text.format_map(data) == "@[0x0, 7]: 5\n@[0x4d2]: 1234\n"  # by value
    assert jsonfmt.key_json((Pointer(1234), 2)) == '"0x4d2,2"'
    decode = shapes.key_decoder([shapes.POINTER, shapes.INT])
    assert decode((1234).to_bytes(8, "little") + (2).to_bytes(8, "little"), None) == (1234, 2)
    assert str(decode((2 ** 64 - 1).to_bytes(8, "little") + bytes(8), None)[0]) == "0xffffffffffffffff"


def test_json_escapes_every_high_byte_as_a_sign_extended_char():
    # "x\xff\xfeA\xc3\xa9" from a kernel string, decoded as shapes does
    s = shapes.DECODERS["str"](shapes.Shape("str", 16), b"x\xff\xfeA\xc3\xa9\0", None)
    assert text.format_value(s).encode("utf-8", "surrogateescape") == b"x\xff\xfeA\xc3\xa9"
    assert jsonfmt.value_json(s) == '"x\\uffffffff\\ufffffffeA\\uffffffc3\\uffffffa9"'
    assert jsonfmt.value_json('q"\\\n\r\t\x01\x1f\x7f') == '"q\\"\\\\\\n\\r\\t\\u0001\\u001f\x7f"'


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e)))
def test_json_printable_ascii_is_valid_json(value):
    assert json.loads(jsonfmt.value_json(value)) == value


def test_lhist_buckets_past_the_printed_range_keep_one_empty_row():
    # lhist(5, 0, $1, 2) with $1 = 10: bucket 3, printed with max 1 (the parameter's number)
    hist = LHist(0, 1, 2, (0, 0), hidden=(1,))
    data = MapData("@a", "lhist", [((), hist)], keyed=False)
    assert text.format_map(data) == f"@a: \n(..., 0)               0 |{'':<52}|\n\n"
    assert jsonfmt.map_json(data) == '{"type": "hist", "data": {"@a": [{"max": -1, "count": 0}]}}\n'
    assert hist.total == 1  # sorts with the hidden counts, as 0.17


def test_deleted_average_count_prints_zero_average():
    assert text.format_value(Stats(0, 5)) == "count 0, average 0, total 5"
