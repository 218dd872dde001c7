"""What libbpf fills in or forgives at load time, checked against bpftool (libbpf) on this kernel:
per-CPU perf event arrays, ring buffer sizes, the virtual kconfig externs, poisoned CO-RE
relocations, ksyscall sections."""
import mmap
import os
import struct
import subprocess

import pytest
from test_elf import bpffs_dir, bpftool, build  # noqa: F401  (fixtures)
from test_elf_corpus import _differences, load_with_bpftool, load_with_ebpfpy

from ebpfpy.elf import LoadError, ObjectError, load_object

pytestmark = [pytest.mark.kernel, pytest.mark.btf, pytest.mark.clang]

POISON_CALL = struct.pack("<BBhi", 0x85, 0, 0, 0xBAD2310)


def _ncpus():
    from ebpfpy.sys.perf import possible_cpus
    return len(possible_cpus())


def test_compat_object_loads_as_bpftool_loads_it(bpftool, build, bpffs_dir):  # noqa: F811
    path = build("libbpf_compat")
    theirs, ours = load_with_bpftool(path, bpffs_dir), load_with_ebpfpy(path)
    assert theirs.ok, theirs.reason
    assert ours.ok, ours.reason
    assert set(ours.programs) == {"read_virtual_kconfig", "guarded_core", "on_getpid"}
    assert _differences(theirs, ours) == []
    # the poisoned instructions were dead: the verifier dropped them
    xlated = ours.programs["guarded_core"][2]
    assert all(xlated[i:i + 8] != POISON_CALL for i in range(0, len(xlated), 8))


def test_perf_event_array_and_ring_buffer_sizes(build):  # noqa: F811
    with load_object(build("libbpf_compat")) as obj:
        assert obj.map_specs["perf_events"].max_entries == 0  # as declared
        assert obj.map_specs["odd_ring"].max_entries == 10000
        obj.load()
        assert obj.maps["perf_events"].info().max_entries == _ncpus()
        ring = obj.maps["odd_ring"].info().max_entries
        pages = ring // mmap.PAGESIZE
        assert ring % mmap.PAGESIZE == 0 and pages & (pages - 1) == 0 and ring // 2 < 10000 <= ring


def test_map_create_zero_means_the_default():
    from ebpfpy.maps import Map, ringbuf_size
    with Map.create("perf_event_array", max_entries=0) as m:
        assert m.max_entries == m.info().max_entries == _ncpus()
    page = mmap.PAGESIZE
    assert [ringbuf_size(n) for n in (0, 1, page, page + 1, 3 * page, 4 * page)] == \
        [0, page, page, 2 * page, 4 * page, 4 * page]


def _kcfg_values(obj):
    obj.programs["read_virtual_kconfig"].test_run(bytes(64))
    return struct.unpack("<7Q", obj.globals["kcfg"])


def test_virtual_kconfig_externs(build):  # noqa: F811
    from ebpfpy.elf import system
    rel = [int(x) for x in os.uname().release.split("-")[0].split(".")[:3]]
    with open("/proc/kallsyms") as f:
        wrapper = any(line.split()[2] == f"__{system.syscall_prefix()}_sys_bpf" for line in f)
    with load_object(build("libbpf_compat")) as obj:
        obj.load()
        version, cookie, has_wrapper, unknown_weak, bpf_syscall, config_bpf, missing = _kcfg_values(obj)
    if not os.path.exists("/proc/version_signature") and " Debian " not in os.uname().version:
        assert version == (rel[0] << 16) + (rel[1] << 8) + min(rel[2], 255)
    assert cookie == 1  # bpf_get_attach_cookie exists since 5.15
    assert has_wrapper == int(wrapper)
    assert (unknown_weak, bpf_syscall, config_bpf, missing) == (0, 1, ord("y"), 0)


def test_kconfig_map_matches_libbpf(bpftool, build, bpffs_dir):  # noqa: F811
    """The .kconfig map value, byte for byte, as libbpf fills it.  libbpf decides
    LINUX_HAS_SYSCALL_WRAPPER by creating a kprobe on __<arch>_sys_bpf: without kprobes it
    says 0 where the kernel does have the wrappers; we read the symbol table instead."""
    from ebpfpy import features
    from ebpfpy.sys import bpf
    path = build("libbpf_compat")
    progs, maps = os.path.join(bpffs_dir, "p"), os.path.join(bpffs_dir, "m")
    subprocess.run(["bpftool", "prog", "loadall", path, progs, "pinmaps", maps], check=True, capture_output=True)
    kmap = next(n for n in os.listdir(maps) if n.endswith("kconfig"))
    with load_object(path) as obj:
        obj.load()
        spec = obj.map_specs[next(n for n in obj.map_specs if n.endswith(".kconfig"))]
        with bpf.obj_get(os.path.join(maps, kmap)) as fd:
            theirs = bytearray(bpf.map_lookup_elem(fd, b"\0\0\0\0", spec.value_size))
        ours = bytearray(bpf.map_lookup_elem(obj.maps[spec.name], b"\0\0\0\0", spec.value_size))
        wrapper = next(e for e in obj._kconfig if e.name == "LINUX_HAS_SYSCALL_WRAPPER")
    if not features.has("kprobes"):
        assert theirs[wrapper.offset] == 0
        theirs[wrapper.offset] = ours[wrapper.offset]
    assert ours == theirs


def test_strong_kconfig_extern_missing_is_an_error_naming_it(bpftool, build, bpffs_dir):  # noqa: F811
    path = build("kconfig_strong")
    res = subprocess.run(["bpftool", "prog", "loadall", path, os.path.join(bpffs_dir, "p")],
                         capture_output=True, text=True)
    assert res.returncode != 0 and "CONFIG_EBPFPY_SURELY_MISSING" in res.stderr
    with load_object(path) as obj, pytest.raises(ObjectError, match="CONFIG_EBPFPY_SURELY_MISSING") as ei:
        obj.load()
    assert "__weak" in str(ei.value) and obj.maps == {}


def test_reached_poison_names_the_relocation_as_libbpf_does(bpftool, build, bpffs_dir):  # noqa: F811
    path = build("bad_core")
    res = subprocess.run(["bpftool", "prog", "loadall", path, os.path.join(bpffs_dir, "p")],
                         capture_output=True, text=True)
    assert res.returncode != 0
    theirs = next(ln for ln in res.stderr.splitlines() if ln.startswith("failed to resolve CO-RE relocation"))
    with load_object(path) as obj, pytest.raises(LoadError) as ei:
        obj.load()
    err = ei.value
    assert theirs in err.log.splitlines()  # the log fixed up as libbpf fixes it
    assert "<invalid CO-RE relocation>" in err.log and "unknown#195896080" not in err.log
    spec = theirs.removeprefix("failed to resolve CO-RE relocation ")
    assert f"prog 'read_missing': relo #0: {spec}: bad CO-RE relocation: struct task_struct has no field " \
           "'no_such_field_in_kernel' in the running kernel" in str(err)


def test_ksyscall_section(build):  # noqa: F811
    from ebpfpy import features
    from ebpfpy.attach.errors import ProbeUnavailableError
    from ebpfpy.elf import system
    from ebpfpy.sys.consts import ProgType
    symbol = system.syscall_symbol("getpid")
    assert symbol == (f"__{system.syscall_prefix()}_sys_getpid" if system.has_syscall_wrapper()
                      else "__se_sys_getpid")
    with load_object(build("libbpf_compat")) as obj:
        prog = obj.programs["on_getpid"]
        assert (prog.prog_type, prog.probe, prog.kind.syscall) == (ProgType.KPROBE, f"kprobe:{symbol}", "getpid")
        obj.load()
        assert prog.info().type == ProgType.KPROBE
        if features.has("kprobes"):
            atts = prog.attach()
            assert len(atts) == 1
            for a in atts:
                a.close()
        else:
            with pytest.raises(ProbeUnavailableError) as ei:
                prog.attach()
            msg = str(ei.value)
            assert "'on_getpid'" in msg and "'getpid'" in msg and symbol in msg and "kprobes" in msg
            with pytest.raises(ProbeUnavailableError, match=r"kretprobe|kprobes"):
                prog.attach_ksyscall("getppid", retprobe=True)


def test_hidden_subprograms_are_static_as_in_libbpf(bpftool, build, bpffs_dir):  # noqa: F811
    from ebpfpy.btf import Kind
    from ebpfpy.btf.types import LINKAGE_GLOBAL, LINKAGE_STATIC
    path = build("hidden_subprog")
    theirs, ours = load_with_bpftool(path, bpffs_dir), load_with_ebpfpy(path)
    assert theirs.ok, theirs.reason
    assert ours.ok, ours.reason
    assert _differences(theirs, ours) == []
    with load_object(path) as obj:
        linkage = {obj.btf[i].name: obj.btf[i].linkage for i in obj.btf.ids() if obj.btf.kind_of(i) == Kind.FUNC}
        assert linkage == {"deref_weak": LINKAGE_STATIC, "deref_strict": LINKAGE_STATIC,
                           "checked_global": LINKAGE_GLOBAL, "call_hidden": LINKAGE_GLOBAL}
        obj.load()
        assert obj.programs["call_hidden"].test_run(bytes(64)).retval == 6 + 7 + 5
