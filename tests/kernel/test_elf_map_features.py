"""libbpf's BTF map features: maps of maps with initial inner maps, program arrays with
initial programs, map_extra, and reuse of maps pinned by name only when they match.

tests/bpf_objects/map_in_map.bpf.c is built with clang-19 and loaded by ebpfpy and by
``bpftool prog loadall`` (libbpf): same programs, same maps (type, sizes, flags, map_extra),
same initial slots.
"""
import os
import shutil
import struct
import subprocess

import pytest
from helpers import write_vmlinux_h
from test_attach_common import own_fds

from ebpfpy.elf import ObjectError, load_object
from ebpfpy.sys import bpf

HERE = os.path.dirname(__file__)
SRC = os.path.join(HERE, "..", "bpf_objects")

pytestmark = [pytest.mark.kernel, pytest.mark.btf, pytest.mark.clang]


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    d = tmp_path_factory.mktemp("map_features")
    write_vmlinux_h(d)
    return d


def build(out, source: str, name: str) -> str:
    obj = str(out / f"{name}.o")
    subprocess.run(["clang-19", "-O2", "-g", "-target", "bpf", "-I", str(out), "-I", SRC, "-c", source, "-o", obj],
                   check=True)
    return obj


@pytest.fixture(scope="module")
def mim(out):
    return build(out, os.path.join(SRC, "map_in_map.bpf.c"), "map_in_map")


@pytest.fixture
def bpffs_dir():
    from ebpfpy.bpffs import temp_dir
    with temp_dir("ebpfpy-mapfeat-") as d:
        yield d


def _slots(outer, n: int) -> dict[int, str]:
    """Slot -> name of the map (or program) it holds, read back through the ids."""
    found = {}
    for i in range(n):
        try:
            raw = bpf.map_lookup_elem(outer, struct.pack("<I", i), 4)
        except OSError:
            continue
        with bpf.map_get_fd_by_id(struct.unpack("<I", raw)[0]) as fd:
            found[i] = bpf.map_info(fd).name
    return found


def test_maps_of_maps_prog_array_and_map_extra(mim):
    fds = own_fds()
    with load_object(mim) as obj:
        specs = obj.map_specs
        assert (specs["outer"].value_size, specs["outer"].inner.max_entries) == (4, 1)
        assert specs["outer"].init_slots == {0: "inner_a", 2: "inner_b"}
        assert specs["by_id"].inner.map_type == 1 and not specs["by_id"].init_slots  # BPF_MAP_TYPE_HASH
        assert specs["jump"].init_slots == {1: "tail_target"}
        obj.load()
        assert "outer.inner" not in obj.maps  # the inner template is not one of the object's maps
        assert _slots(obj.maps["outer"], 4) == {0: "inner_a", 2: "inner_b"}
        assert obj.programs["lookup_inner"].test_run(b"\0" * 64).retval == 7  # jump[1] = tail_target
        assert obj.maps["inner_b"].lookup_raw(b"\0" * 4) == struct.pack("<Q", 1)
        assert obj.maps["inner_a"].lookup_raw(b"\0" * 4) == struct.pack("<Q", 0)
        assert bpf.map_info(obj.maps["seen"]).map_extra == 3
    assert own_fds() == fds


def test_same_maps_and_slots_as_bpftool(mim, bpffs_dir):
    if not shutil.which("bpftool"):
        pytest.skip("bpftool (the libbpf reference) is not installed")
    from test_elf import _norm_xlated
    theirs = os.path.join(bpffs_dir, "bpftool")
    subprocess.run(["bpftool", "prog", "loadall", mim, theirs], check=True, capture_output=True)

    def maps_of(prog_fd):
        out = {}
        for mid in bpf.prog_info(prog_fd).map_ids:
            with bpf.map_get_fd_by_id(mid) as mfd:
                i = bpf.map_info(mfd)
                slots = _slots(mfd, i.max_entries) if i.type in (12, 13) else None
            out[i.name] = (i.type, i.key_size, i.value_size, i.max_entries, i.flags, i.map_extra, slots)
        return out

    with load_object(mim) as obj:
        obj.load()
        for name, prog in obj.programs.items():
            with bpf.obj_get(os.path.join(theirs, name)) as fd:
                assert _norm_xlated(prog.program.info().xlated) == _norm_xlated(bpf.prog_info(fd).xlated), name
                assert maps_of(prog.program) == maps_of(fd), name
    # (jump's slot cannot be compared: the kernel empties a program array once no user-space
    # fd or pin holds it, which happens to bpftool's as it exits)


BAD = {
    "nested": """
struct inner { __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS); __uint(max_entries, 1); __type(key, __u32);
               __array(values, struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
                                        __type(key, __u32); __type(value, __u32); }); };
struct { __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS); __uint(max_entries, 1); __type(key, __u32);
         __array(values, struct inner); } outer SEC(".maps");
""",
    "not_a_program": """
struct inner { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u32); };
struct inner a SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PROG_ARRAY); __uint(max_entries, 1); __type(key, __u32);
         __array(values, int (void *)); } jump SEC(".maps") = { .values = { [0] = (void *)&a } };
""",
    "values_on_hash": """
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1); __type(key, __u32);
         __array(values, int (void *)); } h SEC(".maps");
""",
}
BAD_MESSAGES = {
    "nested": "nested maps of maps are not supported",
    "not_a_program": "initial value #0 ('a') is not a program",
    "values_on_hash": "values (__array) is only for maps of maps and program arrays",
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_definitions_are_refused_on_open(out, case):
    src = out / f"bad_{case}.bpf.c"
    src.write_text('#include "vmlinux.h"\n#include "ebpfpy_bpf.h"\nchar LICENSE[] SEC("license") = "GPL";\n'
                   + BAD[case] + 'SEC("socket") int prog(void *ctx) { return 0; }\n')
    path = build(out, str(src), f"bad_{case}")
    with pytest.raises(ObjectError) as ei:
        load_object(path)
    assert BAD_MESSAGES[case] in str(ei.value) and "\n" not in str(ei.value)


def test_pinned_map_reused_only_when_it_matches(out, bpffs_dir):
    """A map pinned by name is reused when its definition matches (shared by two loads);
    a different map at that path is refused, as libbpf refuses it, and nothing is left open."""
    from ebpfpy.maps import Map
    path = build(out, os.path.join(SRC, "pinned_map.bpf.c"), "pinned_map")
    with load_object(path) as a, load_object(path) as b:
        a.load(pin_root=bpffs_dir)
        b.load(pin_root=bpffs_dir)
        assert bpf.map_info(a.maps["shared_count"]).id == bpf.map_info(b.maps["shared_count"]).id
    os.unlink(os.path.join(bpffs_dir, "shared_count"))
    with Map.create("array", 4, 8, 2) as other:
        bpf.obj_pin(other, os.path.join(bpffs_dir, "shared_count"))
    fds = own_fds()
    with load_object(path) as obj, pytest.raises(ObjectError) as ei:
        obj.load(pin_root=bpffs_dir)
    assert "parameter mismatch: max_entries 2 (wanted 1)" in str(ei.value)
    assert own_fds() == fds


def test_typeless_ksyms_are_kallsyms_addresses(out, bpffs_dir):
    """``extern const void __start_BTF __ksym``: the program sees __start_BTF's /proc/kallsyms
    address (a weak one the kernel lacks: 0), and its code is bpftool's."""
    from ebpfpy.elf.externs import kallsyms_addresses
    path = build(out, os.path.join(SRC, "ksym_typeless.bpf.c"), "ksym_typeless")
    want = kallsyms_addresses({"__start_BTF"})["__start_BTF"]
    with load_object(path) as obj:
        obj.load()
        obj.programs["read_addrs"].test_run(b"\0" * 64)
        assert struct.unpack("<2Q", obj.globals["addrs"]) == (want, 0)
        if shutil.which("bpftool"):
            from test_elf import _norm_xlated
            theirs = os.path.join(bpffs_dir, "bpftool")
            subprocess.run(["bpftool", "prog", "loadall", path, theirs], check=True, capture_output=True)
            with bpf.obj_get(os.path.join(theirs, "read_addrs")) as fd:
                mine = obj.programs["read_addrs"].program.info().xlated
                assert _norm_xlated(mine) == _norm_xlated(bpf.prog_info(fd).xlated)


def test_missing_strong_typeless_ksym_is_an_error(out):
    src = out / "bad_ksym.bpf.c"
    src.write_text('#include "vmlinux.h"\n#include "ebpfpy_bpf.h"\nchar LICENSE[] SEC("license") = "GPL";\n'
                   'extern const void ebpfpy_no_such_symbol __attribute__((section(".ksyms")));\n'
                   '__u64 a;\nSEC("socket") int prog(void *ctx) { a = (__u64)&ebpfpy_no_such_symbol; return 0; }\n')
    with load_object(build(out, str(src), "bad_ksym")) as obj, pytest.raises(ObjectError) as ei:
        obj.load()
    assert "extern (ksym) 'ebpfpy_no_such_symbol': not in /proc/kallsyms" in str(ei.value)


# -- inner maps from Python: libbpf's bpf_map__set_inner_map_fd, and new inner maps for the slots


def test_set_inner_map_fd_for_a_map_of_maps_without_inner_definition(out):
    """``dyn`` declares no inner map: without a template the load fails with one line and leaves
    nothing open; with ``set_inner_map_fd`` (a template Python made, still its own) it loads, and
    ``create_inner_map`` makes maps of the template's shape to put in the slots at run time."""
    from ebpfpy.maps import Map
    path = build(out, os.path.join(SRC, "map_in_map_dyn.bpf.c"), "map_in_map_dyn")
    fds = own_fds()
    with load_object(path) as obj, pytest.raises(ObjectError) as ei:
        obj.load()
    assert "map 'dyn' is a map of maps without an inner map" in str(ei.value) and "set_inner_map_fd" in str(ei.value)
    assert own_fds() == fds
    with Map.create("array", 4, 8, 1) as template, load_object(path) as obj:
        obj.set_inner_map_fd("dyn", template)
        obj.load()
        assert bpf.map_info(template).id  # the template is left to its owner
        prog = obj.programs["bump_inner"]
        assert prog.test_run(b"\0" * 64).retval == 1  # no inner map in dyn[1] yet
        with obj.create_inner_map("dyn") as inner:
            info = bpf.map_info(inner)
            assert (info.type, info.key_size, info.value_size, info.max_entries) == (2, 4, 8, 1)
            obj.maps["dyn"][1] = inner
            assert obj.maps["dyn"][1] == info.id
            for _ in range(3):
                assert prog.test_run(b"\0" * 64).retval == 0
            assert struct.unpack("<Q", inner.lookup_raw(struct.pack("<I", 0)))[0] == 3
    assert own_fds() == fds


def test_set_inner_map_fd_replaces_the_declared_inner_map(mim):
    """As in libbpf the given template replaces the ``__array(values, ...)`` definition: the
    outer map takes inner maps of the template's shape, and only those."""
    from ebpfpy.maps import Map
    with load_object(mim) as obj:
        with obj.create_inner_map("by_id") as declared:  # before load: the declared shape, BTF-typed
            info = bpf.map_info(declared)
            assert (info.type, info.key_size, info.value_size, info.max_entries) == (1, 4, 4, 16)
            declared[5] = 6
            assert declared[5] == 6
    with Map.create("lru_hash", 4, 4, 32) as template, load_object(mim) as obj:
        obj.set_inner_map_fd("by_id", template)
        obj.load()
        assert obj.programs["lookup_inner"].test_run(b"\0" * 64).retval == 7  # by_id[0] empty
        with obj.create_inner_map("by_id") as inner, Map.create("hash", 4, 4, 16) as declared_shape:
            assert bpf.map_info(inner).type == 9  # lru_hash, the template's
            with pytest.raises(OSError):
                obj.maps["by_id"][0] = declared_shape  # no longer the inner shape
            obj.maps["by_id"][0] = inner
            assert obj.programs["lookup_inner"].test_run(b"\0" * 64).retval == 4  # by_id[0] found


def test_set_inner_map_fd_errors(mim):
    from ebpfpy.maps import Map
    with Map.create("array", 4, 8, 1) as template, load_object(mim) as obj:
        with pytest.raises(ObjectError, match="map 'seen' is not a map of maps"):
            obj.set_inner_map_fd("seen", template)
        with pytest.raises(KeyError, match="no map 'nope'"):
            obj.set_inner_map_fd("nope", template)
        with pytest.raises(ObjectError, match="'seen' is not a map of maps of this object"):
            obj.create_inner_map("seen")
        obj.set_inner_map_fd("outer", template)
        with pytest.raises(ObjectError, match="inner map already specified"):
            obj.set_inner_map_fd("outer", template)
    with load_object(mim) as obj:
        obj.load()
        with pytest.raises(ObjectError, match="before load"):
            obj.set_inner_map_fd("by_id", 0)
