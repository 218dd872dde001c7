"""The BTF writers (C header, one C definition, raw records) read the raw records in place.

They do not decode type values, so these tests hold their shortcuts against the type-value
API: sizes and alignments against ``BTF.size_of``/``align_of``, the inlined raw records against
the generic per-record path, streaming against the whole text, split and non-ASCII blobs, and
malformed blobs (BTFError, nothing else). Byte-identity with bpftool is in test_btf.py and
tests/kernel/test_elf.py.
"""
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from ebpfpy.btf import (
    BTF,
    BTFError,
    Enum,
    FuncProto,
    Int,
    Kind,
    Member,
    Param,
    Ref,
    Struct,
    vmlinux,
)
from ebpfpy.btf.cformat import format_decl, format_definition
from ebpfpy.btf.cheader import format_header, write_header
from ebpfpy.btf.rawdump import _lines, _quoter, raw_text, write_raw
from ebpfpy.btf.types import ptr
from ebpfpy.btf.view import View, view

VMLINUX = "/sys/kernel/btf/vmlinux"


def small_blob() -> BTF:
    return BTF.from_types([
        Int("int", 4, 1, 0, 32),                                             # 1
        Struct(False, "s", 16, (Member("x", 1, 0), Member("next", 3, 64))),  # 2
        ptr(2),                                                              # 3
        Ref(Kind.TYPEDEF, "s_t", 2),                                         # 4
        Enum(False, "", 4, (("A", 0), ("B", -2)), True),                     # 5 (not referenced)
        FuncProto(1, (Param("p", 3), Param("", 0))),                         # 6
    ])


def test_small_blob_as_a_header_and_as_raw_records():
    spec = small_blob()
    header = format_header(spec)
    assert ("struct s {\n\tint x;\n\tstruct s *next;\n};\n\ntypedef struct s s_t;\n\n"
            "enum {\n\tA = 0,\n\tB = -2,\n};\n\n") in header
    pieces: list = []
    write_raw(spec, pieces.append)
    assert "".join(pieces) == (
        "[1] INT 'int' size=4 bits_offset=0 nr_bits=32 encoding=SIGNED\n"
        "[2] STRUCT 's' size=16 vlen=2\n\t'x' type_id=1 bits_offset=0\n\t'next' type_id=3 bits_offset=64\n"
        "[3] PTR '(anon)' type_id=2\n"
        "[4] TYPEDEF 's_t' type_id=2\n"
        "[5] ENUM '(anon)' encoding=SIGNED size=4 vlen=2\n\t'A' val=0\n\t'B' val=-2\n"
        "[6] FUNC_PROTO '(anon)' ret_type_id=1 vlen=2\n\t'p' type_id=3\n\t'(anon)' type_id=0\n")
    assert format_decl(spec, 6, "f") == "int f(struct s *p, ...)"
    assert not spec._cache  # nothing above decoded a type value


def test_non_ascii_names_are_decoded_one_by_one():
    spec = BTF.from_types([Int("int", 4, 1, 0, 32), Struct(False, "café", 4, (Member("ünï", 1, 0),))])
    assert view(spec).text is None
    assert format_definition(spec, 2) == "struct café {\n\tint ünï;\n};"
    assert raw_text(spec, 2) == "[2] STRUCT 'café' size=4 vlen=1\n\t'ünï' type_id=1 bits_offset=0"
    assert "struct café {\n\tint ünï;\n};" in format_header(spec)


def test_references_past_the_last_type_are_btf_errors():
    spec = BTF.from_types([Struct(False, "s", 4, (Member("x", 99, 0),)), ptr(77)])
    for write in (lambda: format_header(spec), lambda: format_definition(spec, 1),
                  lambda: format_decl(spec, 2, "p")):
        with pytest.raises(BTFError, match="out of range"):
            write()
    pieces: list = []
    write_raw(spec, pieces.append)  # raw records only print the ids
    assert "".join(pieces).startswith("[1] STRUCT 's' size=4 vlen=1\n\t'x' type_id=99 bits_offset=0\n")


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_writers_on_corrupt_blobs_raise_btf_errors_only(data):
    """Bit-flipped blobs that still parse either print or raise BTFError, as decoding does."""
    blob = bytearray(small_blob().data)
    for pos, val in data.draw(st.lists(st.tuples(st.integers(24, len(blob) - 1), st.integers(0, 255)),
                                       max_size=3)):
        blob[pos] = val
    try:
        spec = BTF(bytes(blob))
        if any(getattr(spec[t], "size", 0) > 4096
               or any(m.bit_offset > 4096 * 8 for m in getattr(spec[t], "members", ())) for t in spec.ids()):
            return  # a flipped size or offset asks for megabytes of padding (as bpftool would print)
    except BTFError:
        return
    for write in (lambda: format_header(spec), lambda: write_raw(spec, lambda s: None),
                  *[lambda t=t: format_definition(spec, t) for t in spec.ids()],
                  *[lambda t=t: raw_text(spec, t) for t in spec.ids()]):
        try:
            write()
        except BTFError:
            pass


@pytest.mark.btf
def test_split_blob_on_vmlinux():
    """A module-like blob: ids continue after vmlinux's, names resolve in both string sections."""
    base = vmlinux()
    n, u32, task = base.count, base.find("u32", Kind.TYPEDEF), base.find_struct("task_struct")
    spec = BTF.from_types([
        Struct(False, "holder", 16, (Member("", n + 1, 0), Member("bits", u32, 64 | (3 << 24)),
                                     Member("b2", u32, 67 | (5 << 24))), True),
        Struct(True, "", 8, (Member("f", n + 2, 0), Member("g", n + 4, 0))),
        ptr(n + 3),
        FuncProto(u32, (Param("a", n + 5), Param("", 0))),
        Enum(False, "", 4, (("AA", 1), ("BB", -1)), True),
        ptr(task),
    ], base=base)
    holder = ("struct holder {\n\tunion {\n\t\tu32 (*f)(struct task_struct *a, ...);\n\t\tenum {\n"
              "\t\t\tAA = 1,\n\t\t\tBB = -1,\n\t\t} g;\n\t};\n\tu32 bits: 3;\n\tu32 b2: 5;\n};")
    assert spec.format_c(n) == holder
    assert holder + "\n\n" in format_header(spec)
    pieces: list = []
    write_raw(spec, pieces.append)
    assert "".join(pieces) == (
        f"[{n}] STRUCT 'holder' size=16 vlen=3\n\t'(anon)' type_id={n + 1} bits_offset=0\n"
        f"\t'bits' type_id={u32} bits_offset=64 bitfield_size=3\n"
        f"\t'b2' type_id={u32} bits_offset=67 bitfield_size=5\n"
        f"[{n + 1}] UNION '(anon)' size=8 vlen=2\n\t'f' type_id={n + 2} bits_offset=0\n"
        f"\t'g' type_id={n + 4} bits_offset=0\n"
        f"[{n + 2}] PTR '(anon)' type_id={n + 3}\n"
        f"[{n + 3}] FUNC_PROTO '(anon)' ret_type_id={u32} vlen=2\n\t'a' type_id={n + 5}\n\t'(anon)' type_id=0\n"
        f"[{n + 4}] ENUM '(anon)' encoding=SIGNED size=4 vlen=2\n\t'AA' val=1\n\t'BB' val=-1\n"
        f"[{n + 5}] PTR '(anon)' type_id={task}\n")


@pytest.mark.btf
def test_view_sizes_and_alignments_agree_with_the_type_values():
    spec = vmlinux()
    v = View(spec)
    for tid in range(spec.count):
        try:
            size = spec.size_of(tid)
        except BTFError:
            size = -1
        assert v.size_of(tid) == size, tid
        assert v.align_of(tid) == spec.align_of(tid), tid


@pytest.mark.btf
@pytest.mark.slow
def test_streamed_header_is_the_header_and_decodes_nothing():
    spec = BTF.from_file(VMLINUX)
    pieces: list = []
    write_header(spec, pieces.append)
    assert len(pieces) > 10 and max(map(len, pieces)) < 2_000_000  # handed out as it goes
    assert not spec._cache
    assert "".join(pieces) == format_header(BTF.from_file(VMLINUX))


@pytest.mark.btf
def test_inlined_raw_records_are_the_generic_ones():
    spec = BTF.from_file(VMLINUX)
    pieces: list = []
    write_raw(spec, pieces.append)
    v = view(spec)
    quoted = _quoter(v)
    assert "".join(pieces) == "".join(_lines(spec, tid, v, quoted) + "\n" for tid in spec.ids())
    assert not spec._cache


def test_bpftool_spelling_of_the_dump_command(tmp_path):
    from ebpfpy.cli.btf import btf

    blob = tmp_path / "small.btf"
    blob.write_bytes(small_blob().data)
    runner = CliRunner()
    ours = runner.invoke(btf, ["dump", str(blob), "--format", "c"])
    assert ours.exit_code == 0
    assert runner.invoke(btf, ["dump", "file", str(blob), "format", "c"]).output == ours.output
    raw = runner.invoke(btf, ["dump", "file", str(blob)])
    assert raw.exit_code == 0 and raw.output.startswith("[1] INT 'int'")  # bpftool's default: raw
    assert runner.invoke(btf, ["dump", "file", str(blob), "format", "xml"]).exit_code == 2
    assert runner.invoke(btf, ["dump", str(blob), "extra"]).exit_code == 2
