"""BTF parse / write / print: pure tests on built blobs, plus the running kernel's vmlinux BTF."""
import os
import re
import shutil
import subprocess
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebpfpy.btf import (
    BTF,
    Array,
    BTFError,
    Datasec,
    DeclTag,
    Enum,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
    Kind,
    Member,
    Param,
    Ref,
    Struct,
    Var,
    VarSecinfo,
    encode,
    vmlinux,
)
from ebpfpy.btf.cformat import format_decl

VMLINUX = "/sys/kernel/btf/vmlinux"


def small_spec():
    """int, unsigned long, a struct with bitfields and an anonymous union, an enum, a typedef."""
    types = [
        Int("int", 4, 1, 0, 32),                                   # 1
        Int("unsigned int", 4, 0, 0, 32),                          # 2
        Int("char", 1, 2, 0, 8),                                   # 3
        Struct(True, "", 8, (Member("a", 1, 0), Member("b", 7, 0))),  # 4 anon union
        Struct(False, "s", 24, (
            Member("x", 1, 0),
            Member("f1", 2, 32, 3),
            Member("f2", 2, 35, 13),
            Member("", 4, 64),
            Member("name", 6, 128),
        ), True),                                                 # 5
        Array(3, 2, 8),                                           # 6 char[8]
        Ref(Kind.PTR, "", 5),                                     # 7 struct s *
        Ref(Kind.TYPEDEF, "s_t", 9),                              # 8
        Ref(Kind.CONST, "", 5),                                   # 9
        Enum(False, "color", 4, (("RED", 0), ("GREEN", 1), ("MINUS", -1)), True),  # 10
        FuncProto(1, (Param("p", 7), Param("n", 2))),             # 11
        Func("handler", 11, 1),                                   # 12
        Ref(Kind.PTR, "", 11),                                    # 13 pointer to function
        Ref(Kind.TYPEDEF, "handler_fn", 13),                      # 14
    ]
    return BTF.from_types(types)


def test_lookup_members_and_sizes():
    spec = small_spec()
    sid = spec.find("s", Kind.STRUCT)
    assert spec.size_of(sid) == 24
    assert spec.size_of(spec.find("s_t")) == 24
    assert spec.resolve(spec.find("s_t")) == sid
    f2 = spec.member(sid, "f2")
    assert (f2.bit_offset, f2.bitfield_size) == (35, 13)
    # a member of the anonymous union is found through it, offset from the outer struct
    b = spec.member(sid, "b")
    assert b.bit_offset == 64 and spec.describe(b.type) == "struct s *"
    assert spec.member(sid, "name").bit_offset == 128
    assert spec.size_of(spec.member(sid, "name").type) == 8
    with pytest.raises(KeyError, match="has no member 'nope'"):
        spec.member(sid, "nope")
    with pytest.raises(KeyError):
        spec.find("missing")
    assert spec[spec.find("color")].values[2] == ("MINUS", -1)


def test_c_printer_on_built_types():
    spec = small_spec()
    assert spec.format_c(spec.find("s", Kind.STRUCT)) == (
        "struct s {\n"
        "\tint x;\n"
        "\tunsigned int f1: 3;\n"
        "\tunsigned int f2: 13;\n"
        "\tunion {\n"
        "\t\tint a;\n"
        "\t\tstruct s *b;\n"
        "\t};\n"
        "\tchar name[8];\n"
        "};"
    )
    assert spec.format_c(spec.find("handler_fn")) == "typedef int (*handler_fn)(struct s *p, unsigned int n);"
    assert spec.format_c(spec.find("color")) == "enum color {\n\tRED = 0,\n\tGREEN = 1,\n\tMINUS = -1,\n};"
    assert format_decl(spec, spec.find("s_t"), "v") == "s_t v"


def test_bad_blobs():
    good = small_spec().data
    with pytest.raises(BTFError, match="too short"):
        BTF(good[:10])
    with pytest.raises(BTFError, match="magic"):
        BTF(b"\0" * 24)
    # cut the type section in the middle of a record: header lengths no longer fit
    with pytest.raises(BTFError):
        BTF(good[:40])


# -- generated type graphs round-trip through the writer ---------------------------------------

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=0, max_size=8)
ids = st.integers(min_value=0, max_value=12)


def type_values():
    u32 = st.integers(min_value=0, max_value=2**32 - 1)
    return st.one_of(
        st.builds(Int, names, st.sampled_from([1, 2, 4, 8, 16]), st.sampled_from([0, 1, 2, 4]),
                  st.integers(0, 127), st.integers(0, 128)),
        st.builds(Float, names, st.sampled_from([4, 8, 16])),
        st.builds(Ref, st.sampled_from([Kind.PTR, Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST,
                                        Kind.RESTRICT, Kind.TYPE_TAG]), names, ids),
        st.builds(Array, ids, ids, u32),
        st.builds(lambda u, n, s, ms, bf: Struct(u, n, s, tuple(
            Member(m[0], m[1], m[2] & 0xFFFFFF if bf else m[2], m[3] if bf else 0) for m in ms), bf),
            st.booleans(), names, u32,
            st.lists(st.tuples(names, ids, u32, st.integers(0, 255)), max_size=4), st.booleans()),
        st.builds(lambda n, vs, s: Enum(False, n, 4, tuple((a, (b - 2**31) if s else b) for a, b in vs), s),
                  names, st.lists(st.tuples(names, u32), max_size=4), st.booleans()),
        st.builds(lambda n, vs, s: Enum(True, n, 8, tuple((a, (b - 2**63) if s else b) for a, b in vs), s),
                  names, st.lists(st.tuples(names, st.integers(0, 2**64 - 1)), max_size=4), st.booleans()),
        st.builds(Fwd, names, st.booleans()),
        st.builds(Func, names, ids, st.integers(0, 2)),
        st.builds(lambda r, ps: FuncProto(r, tuple(Param(a, b) for a, b in ps)), ids,
                  st.lists(st.tuples(names, ids), max_size=4)),
        st.builds(Var, names, ids, st.integers(0, 2)),
        st.builds(lambda n, s, vs: Datasec(n, s, tuple(VarSecinfo(*v) for v in vs)), names, u32,
                  st.lists(st.tuples(ids, u32, u32), max_size=3)),
        st.builds(DeclTag, names, ids, st.integers(-1, 10)),
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(type_values(), min_size=1, max_size=12))
def test_roundtrip_generated(types):
    spec = BTF(encode(types))
    assert [spec[i] for i in spec.ids()] == types
    again = BTF(spec.encode())
    assert [again[i] for i in again.ids()] == types
    for i, t in zip(spec.ids(), types):
        if t.name:
            assert i in spec.find_all(t.name)


def test_split_btf_roundtrip():
    base = small_spec()
    split = BTF.from_types([Ref(Kind.PTR, "", 5), Struct(False, "t", 8, (Member("p", base.count, 0),))], base)
    assert split.first_id == base.count
    tid = split.find("t")
    assert tid == base.count + 1
    assert split.describe(split.member(tid, "p").type) == "struct s *"
    assert split.find("s") == base.find("s")
    again = BTF(split.encode(), base)
    assert [again[i] for i in again.ids()] == [split[i] for i in split.ids()]


# -- the running kernel ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def bpftool_header(tmp_path_factory):
    if not shutil.which("bpftool"):
        pytest.skip("bpftool missing")
    out = subprocess.run(["bpftool", "btf", "dump", "file", VMLINUX, "format", "c"],
                         check=True, capture_output=True, text=True).stdout
    return out


def _bpftool_block(header: str, kind: str, name: str) -> str:
    m = re.search(rf"^{kind} {name} {{\n.*?^}}[^;\n]*;$", header, re.DOTALL | re.MULTILINE)
    assert m, f"{kind} {name} not in bpftool output"
    return m.group(0)


@pytest.mark.btf
@pytest.mark.parametrize("kind,name", [
    ("struct", "list_head"), ("struct", "task_struct"), ("struct", "sk_buff"),
    ("struct", "file_operations"), ("struct", "mm_struct"), ("union", "bpf_attr"),
    ("enum", "bpf_map_type"), ("struct", "trace_entry"), ("struct", "perf_event_attr"),
])
def test_c_matches_bpftool(bpftool_header, kind, name):
    spec = vmlinux()
    k = {"struct": Kind.STRUCT, "union": Kind.UNION, "enum": Kind.ENUM}[kind]
    assert spec.format_c(spec.find(name, k)) == _bpftool_block(bpftool_header, kind, name)


@pytest.mark.btf
def test_c_matches_bpftool_sampled(bpftool_header):
    """Every 20th named struct/union/enum of the kernel prints exactly as bpftool prints it,
    except where bpftool renamed a clashing name (``___2``), which a one-type dump cannot know."""
    spec = vmlinux()
    kinds = {"struct": (Kind.STRUCT,), "union": (Kind.UNION,), "enum": (Kind.ENUM, Kind.ENUM64)}
    blocks = list(re.finditer(r"^(struct|union|enum) (\w+) \{\n.*?^\}[^;\n]*;$", bpftool_header, re.DOTALL | re.MULTILINE))
    checked = 0
    for m in blocks[::20]:
        kind, name, text = m.group(1), m.group(2), m.group(0)
        if "___" in text:
            continue
        ids = [i for k in kinds[kind] for i in spec.find_all(name, k)]
        if len(ids) != 1:
            continue
        assert spec.format_c(ids[0]) == text
        checked += 1
    assert checked > 200


@pytest.mark.btf
@pytest.mark.slow
def test_whole_vmlinux_header_matches_bpftool(bpftool_header):
    """Order, forward declarations and ___N renames included: the header is byte-identical."""
    from ebpfpy.btf.cheader import format_header
    assert format_header(vmlinux()) == bpftool_header


@pytest.mark.btf
@pytest.mark.slow
def test_raw_dump_matches_bpftool():
    from click.testing import CliRunner

    from ebpfpy.cli.btf import btf
    theirs = subprocess.run(["bpftool", "btf", "dump", "file", VMLINUX], check=True,
                            capture_output=True, text=True).stdout
    res = CliRunner().invoke(btf, ["dump", "--format", "raw"])
    assert res.exit_code == 0
    assert res.output == theirs


@pytest.mark.btf
def test_typedefs_match_bpftool(bpftool_header):
    spec = vmlinux()
    for name in ("u32", "pid_t", "atomic_t", "bpf_callback_t", "irq_handler_t"):
        text = spec.format_c(spec.find(name, Kind.TYPEDEF))
        assert re.search("^" + re.escape(text) + "$", bpftool_header, re.MULTILINE), text


@pytest.mark.btf
def test_vmlinux_fast_lazy_and_sane():
    t0 = time.perf_counter()
    spec = BTF.from_file(VMLINUX)
    tid = spec.find("task_struct", Kind.STRUCT)
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.5, f"vmlinux BTF load + one lookup took {elapsed:.3f}s"
    assert len(spec._cache) < 10  # lazy: bodies are decoded on demand only
    pid = spec.member(tid, "pid")
    assert spec.describe(pid.type) == "pid_t" and spec.size_of(pid.type) == 4
    assert spec.size_of(spec.find("list_head", Kind.STRUCT)) == 16
    assert spec.size_of(tid) == spec[tid].size


@pytest.mark.btf
def test_name_lookup_scan_agrees_with_index():
    names = ["task_struct", "int", "list_head", "sk_buff", "pid_t", "u32", "bpf_map_type", "nope_not_here"]
    scan = BTF.from_file(VMLINUX)
    by_scan = [scan.find_all(n) for n in names]
    assert scan._names is None  # few lookups: no index built
    indexed = BTF.from_file(VMLINUX)
    indexed._name_index()
    assert by_scan == [indexed.find_all(n) for n in names]
    assert all(by_scan[:-1]) and by_scan[-1] == []


@pytest.mark.btf
def test_function_and_raw_tracepoint_prototypes():
    spec = vmlinux()
    proto = spec.func_proto("do_sys_openat2")
    assert [p.name for p in proto.params] == ["dfd", "filename", "how"]
    assert spec.describe(proto.params[1].type) == "const char *"
    tp = spec.raw_tracepoint_proto("sys_enter")
    assert [spec.describe(p.type) for p in tp.params] == ["void *", "struct pt_regs *", "long int"]
    with pytest.raises(KeyError):
        spec.func_proto("no_such_function_here")


@pytest.mark.btf
def test_vmlinux_roundtrip():
    spec = vmlinux()
    again = BTF(spec.encode())
    assert again.count == spec.count
    for tid in spec.ids():
        assert again[tid] == spec[tid]


@pytest.mark.btf
def test_vmlinux_mapped_or_read_alike(tmp_path):
    """vmlinux is mapped where the kernel allows it (6.16+) and read elsewhere; a copy in a plain
    file is always read. Both give the same records, and a dump of one is the dump of the other."""
    import mmap

    from ebpfpy.btf.rawdump import raw_text

    mapped = BTF.from_file(VMLINUX)
    copy = tmp_path / "vmlinux.btf"
    copy.write_bytes(bytes(mapped.data))
    read = BTF.from_file(str(copy))
    assert isinstance(read.data, bytes)
    if isinstance(mapped.data, mmap.mmap):
        assert len(mapped.data) == len(read.data)
    assert read.count == mapped.count
    tid = read.find_struct("task_struct")
    assert mapped.find_struct("task_struct") == tid
    assert mapped.format_c(tid) == read.format_c(tid)
    assert [raw_text(mapped, t) for t in range(1, mapped.count, 997)] == \
        [raw_text(read, t) for t in range(1, read.count, 997)]


@pytest.mark.btf
def test_modules_split_on_vmlinux():
    mods = [m for m in os.listdir("/sys/kernel/btf") if m != "vmlinux"]
    if not mods:
        pytest.skip("no module BTF on this kernel")
    from ebpfpy.btf import module
    spec = module(mods[0])
    assert spec.first_id == vmlinux().count
    for tid in list(spec.ids())[:200]:
        spec[tid]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_corrupt_blobs_fail_cleanly(data):
    """Truncated or bit-flipped blobs either parse or raise BTFError, never anything else."""
    blob = bytearray(small_spec().data)
    cut = data.draw(st.integers(0, len(blob)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(blob) - 1), st.integers(0, 255)), max_size=4))
    for pos, val in flips:
        blob[pos] = val
    try:
        spec = BTF(bytes(blob[:cut] if cut < len(blob) else blob))
        for tid in spec.ids():
            spec[tid]
            spec.name_of(tid)
    except BTFError:
        pass


def _ext_blob(func_info=(), line_info=(), core=()):
    """A .BTF.ext for section name offset 1 of small_spec's strings ("int")."""
    import struct as s

    def part(rec_size, recs, fmt):
        if not recs:
            return b""
        return s.pack("<III", rec_size, 1, len(recs)) + b"".join(s.pack(fmt, *r) for r in recs)
    fi = part(8, func_info, "<II")
    li = part(16, line_info, "<IIII")
    cr = part(16, core, "<IIII")
    hdr = s.pack("<HBBIIIIIII", 0xEB9F, 1, 0, 32, 0, len(fi), len(fi), len(li), len(fi) + len(li), len(cr))
    return hdr + fi + li + cr


def test_btf_ext_parse_and_errors():
    from ebpfpy.btf import CoreReloKind, parse_ext
    spec = small_spec()
    ext = parse_ext(_ext_blob([(0, 12), (16, 12)], [(8, 1, 1, (7 << 10) | 3)], [(24, 5, 1, 9)]), spec)
    assert [(f.insn_off, f.type_id) for f in ext.func_info["int"]] == [(0, 12), (16, 12)]
    li = ext.line_info["int"][0]
    assert (li.insn_off, li.line, li.col) == (8, 7, 3)
    assert ext.core_relos["int"][0].kind == CoreReloKind.TYPE_SIZE
    with pytest.raises(BTFError, match="unknown kind 99"):
        parse_ext(_ext_blob(core=[(0, 1, 1, 99)]), spec)
    with pytest.raises(BTFError, match="exceeds the section"):
        parse_ext(_ext_blob([(0, 12)])[:-4], spec)
    with pytest.raises(BTFError):
        parse_ext(b"\0" * 32, spec)


@pytest.mark.btf
@pytest.mark.bpftrace
@pytest.mark.parametrize("name", ["list_head", "sched_entity", "task_struct"])
def test_struct_listing_matches_bpftrace_lv(name):
    """``bpftrace -lv 'struct X'`` prints the same definition (plus a blank line)."""
    out = subprocess.run(["bpftrace", "-lv", f"struct {name}"], check=True, capture_output=True, text=True,
                         timeout=60).stdout
    spec = vmlinux()
    assert out == spec.format_c(spec.find_struct(name)) + "\n\n"


def test_values_encode_decode():
    from ebpfpy.btf.values import decode, encode
    spec = small_spec()
    sid = spec.find("s", Kind.STRUCT)
    value = {"x": -5, "f1": 5, "f2": 4000, "__anon3": {"a": 7, "b": 7}, "name": "abc"}
    raw = encode(spec, sid, value)
    assert len(raw) == 24
    got = decode(spec, sid, raw)
    assert (got["x"], got["f1"], got["f2"], got["name"]) == (-5, 5, 4000, "abc")
    assert got["__anon3"]["a"] == 7
    color = spec.find("color")
    assert decode(spec, color, encode(spec, color, "GREEN")) == "GREEN"
    assert decode(spec, color, encode(spec, color, -1)) == "MINUS"
    with pytest.raises(KeyError, match="no member 'nope'"):
        encode(spec, sid, {"nope": 1})
    with pytest.raises(ValueError):
        encode(spec, spec.find("color"), "PURPLE")
