"""Clang-built objects: load like libbpf, CO-RE against this kernel, run, and compare with bpftool."""
import os
import shutil
import struct
import subprocess
import threading
import time

import pytest
from helpers import write_vmlinux_h

from ebpfpy.elf import LoadError, ObjectError, load_object

HERE = os.path.dirname(__file__)
SRC = os.path.join(HERE, "..", "bpf_objects")
CLANG = "clang-19"

pytestmark = [pytest.mark.kernel, pytest.mark.btf, pytest.mark.clang]


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """Compile a test object (vmlinux.h generated from this kernel once per module)."""
    out = tmp_path_factory.mktemp("bpfobj")
    write_vmlinux_h(out)
    built = {}

    def compile_(name, *flags):
        key = (name, flags)
        if key not in built:
            obj = out / (name + ("-".join(f.strip("-") for f in flags) or "") + ".o")
            subprocess.run([CLANG, "-O2", "-target", "bpf", *flags, "-I", str(out), "-I", SRC,
                            "-c", os.path.join(SRC, name + ".bpf.c"), "-o", str(obj)], check=True)
            built[key] = str(obj)
        return built[key]

    return lambda name, *flags: compile_(name, *(flags or ("-g",)))


@pytest.fixture
def bpftool():
    if not shutil.which("bpftool"):
        pytest.skip("bpftool (the libbpf reference) is not installed")
    return "bpftool"


@pytest.fixture
def bpffs_dir():
    from ebpfpy.bpffs import temp_dir
    with temp_dir("ebpfpy-elf-") as d:
        yield d


def _norm_xlated(x: bytes) -> bytes:
    """Map ids -> order of first use, so two loads of the same object compare equal."""
    out, ids, i = bytearray(x), {}, 0
    while i < len(out) // 8:
        if out[i * 8] == 0x18:
            if out[i * 8 + 1] >> 4 in (1, 2, 5, 6):
                (mid,) = struct.unpack_from("<I", out, i * 8 + 4)
                struct.pack_into("<I", out, i * 8 + 4, ids.setdefault(mid, len(ids)))
            i += 2
        else:
            i += 1
    return bytes(out)


def _hammer(fn, stop):
    while not stop.is_set():
        fn()
        time.sleep(0.001)


@pytest.mark.ringbuf
def test_core_task_end_to_end(build):
    path = build("core_task")
    with load_object(path) as obj:
        assert set(obj.programs) == {"on_getpid", "on_getppid"}
        assert obj.programs["on_getpid"].probe == "tracepoint:syscalls:sys_enter_getpid"
        assert obj.programs["on_getppid"].probe == "tracepoint:syscalls:sys_enter_getppid"
        assert {"events", "counters", "rb"} <= set(obj.map_specs)
        assert dict(obj.globals) == {"target_tgid": 0, "magic": 0x1234, "hits": 0, "last_seen": 7,
                                     "tag": b"ebpfpy\0\0", "reset_bit": 99}
        obj.globals["target_tgid"] = os.getpid()
        obj.load()
        assert obj.globals["target_tgid"] == os.getpid()  # read back from the frozen map
        with pytest.raises(ObjectError, match="frozen"):
            obj.globals["target_tgid"] = 1
        obj.attach_all()
        for _ in range(3):
            os.getpid()
        os.getppid()
        events = obj.maps["events"]
        raw = events.lookup_raw(struct.pack("<I", os.getpid()))
        assert raw is not None, "the tracepoint program did not record this process"
        tgid, ppid, magic = struct.unpack_from("<IIQ", raw)
        comm = raw[16:32].split(b"\0")[0]
        assert (tgid, ppid, magic) == (os.getpid(), os.getppid(), 0x1234)
        with open(f"/proc/{os.getpid()}/comm", "rb") as f:
            assert comm and comm in f.read()
        # BTF-typed map access: the value decodes to the struct's members
        assert obj.maps["events"][os.getpid()] == {"tgid": os.getpid(), "ppid": os.getppid(),
                                                   "magic": 0x1234, "comm": comm.decode()}
        # the same event went through the BTF-defined ring buffer
        from ebpfpy.events.ringbuf import RingBuffer
        got = []
        with RingBuffer(obj.maps["rb"], got.extend) as ring:
            ring.consume()
        assert got and all(bytes(e)[:8] == raw[:8] for e in got)
        counters = obj.maps["counters"]
        vals = [struct.unpack("<Q", counters.lookup_raw(struct.pack("<I", i)))[0] for i in range(4)]
        assert vals[0] >= 3 and vals[1] >= 1 and vals[2] >= 3  # bump(2): both FIELD_EXISTS are 1
        assert vals[3] == 16  # CO-RE TYPE_SIZE of struct list_head
        assert obj.globals["hits"] >= 3
        assert obj.globals["last_seen"] == os.getppid()
        # a CO-RE bitfield read (byte offset/size, lshift, rshift) of task->sched_reset_on_fork
        assert obj.globals["reset_bit"] == 0
        os.sched_setscheduler(0, os.SCHED_OTHER | os.SCHED_RESET_ON_FORK, os.sched_param(0))
        try:
            os.getpid()
            assert obj.globals["reset_bit"] == 1
        finally:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        os.getpid()
        assert obj.globals["reset_bit"] == 0
        obj.globals["last_seen"] = 99  # .data stays writable after load
        assert obj.globals["last_seen"] == 99
        # btf-typed maps, program info
        info = obj.programs["on_getpid"].program.info()
        assert info.btf_id != 0 and info.name == "on_getpid"
    assert obj.maps == {} and obj.programs["on_getpid"].program is None


def test_subprograms_callbacks_and_globals_test_run(build):
    with load_object(build("calls_data")) as obj:
        assert set(obj.programs) == {"sock_main", "sock_second"}  # two programs, one section
        assert obj.globals["hidden"] == 5 and obj.globals.section_of("calls") == ".data.counters"
        obj.globals["scale"] = 10
        obj.load()
        main = obj.programs["sock_main"].program
        # poly(2) = 2*2*scale + 2 + hidden; bpf_loop callback sums 0..3
        assert main.test_run(bytes(64)).retval == 4 * 10 + 2 + 5 + 6
        assert obj.programs["sock_second"].program.test_run(bytes(64)).retval == 16 + 10 + (10 + 1 + 5)
        assert obj.globals["calls"] == 1
        assert obj.maps["names"].lookup_raw(b"\0\0\0\0") == b"from-rodata-str\0"


def _needs(name):
    """Skip objects this kernel cannot run (older kernels in the qemu guest)."""
    if name == "ksyms":
        _need_kfuncs()
    if name == "kconfig" and not os.path.exists("/proc/config.gz"):
        pytest.skip("no /proc/config.gz")


def _need_kfuncs():
    from ebpfpy.btf import Kind, vmlinux
    if not vmlinux().find_all("bpf_task_from_pid", Kind.FUNC):
        pytest.skip("kernel lacks the bpf_task_from_pid kfunc (6.2+)")


@pytest.mark.parametrize("name", ["core_task", "calls_data", "tp_btf", "kconfig", "ksyms", "callgraph"])
def test_xlated_matches_bpftool_loadall(bpftool, build, bpffs_dir, name):
    from ebpfpy.sys import bpf
    _needs(name)
    path = build(name)
    theirs_dir = os.path.join(bpffs_dir, "bpftool")
    subprocess.run(["bpftool", "prog", "loadall", path, theirs_dir], check=True, capture_output=True)
    with load_object(path) as obj:
        obj.load()
        assert obj.btf_fd is not None  # the kernel accepted the object's (fixed-up) BTF
        assert sorted(os.listdir(theirs_dir)) == sorted(obj.programs)
        for pname, prog in obj.programs.items():
            with bpf.obj_get(os.path.join(theirs_dir, pname)) as fd:
                their_info = bpf.prog_info(fd)
            my_info = prog.program.info()
            assert (my_info.type, my_info.name) == (their_info.type, their_info.name), pname
            theirs, mine = their_info.xlated, my_info.xlated
            assert len(mine) == len(theirs), pname
            assert _norm_xlated(mine) == _norm_xlated(theirs), pname
            # the maps the two programs use look the same too (name, type, sizes, flags)
            def shape(prog_fd):
                out = []
                for mid in bpf.prog_info(prog_fd).map_ids:
                    with bpf.map_get_fd_by_id(mid) as mfd:
                        i = bpf.map_info(mfd)
                    out.append((i.name, i.type, i.key_size, i.value_size, i.max_entries, i.flags))
                return sorted(out)
            with bpf.obj_get(os.path.join(theirs_dir, pname)) as fd:
                assert shape(prog.program) == shape(fd), pname


def _xlated_text(pin: str) -> str:
    """bpftool's annotated dump (function names and source lines come from func/line info)."""
    import re
    text = subprocess.run(["bpftool", "prog", "dump", "xlated", "pinned", pin], check=True,
                          capture_output=True, text=True).stdout
    ids = {}
    return re.sub(r"map\[id:(\d+)\]", lambda m: f"map[#{ids.setdefault(m.group(1), len(ids))}]", text)


def test_func_and_line_info_match_bpftool(bpftool, build, bpffs_dir):
    path = build("core_task")
    theirs = os.path.join(bpffs_dir, "theirs")
    subprocess.run(["bpftool", "prog", "loadall", path, theirs], check=True, capture_output=True)
    with load_object(path) as obj:
        obj.load()
        ours = os.path.join(bpffs_dir, "ours")
        obj.pin_programs(ours)
        for name in obj.programs:
            mine = _xlated_text(os.path.join(ours, name))
            assert "; __u32 tgid = bpf_get_current_pid_tgid() >> 32;" in mine
            assert mine == _xlated_text(os.path.join(theirs, name))


def test_loadall_cli_pins_like_bpftool(bpftool, build, bpffs_dir):
    from click.testing import CliRunner

    from ebpfpy.cli.objects import loadall
    path = build("calls_data")
    ours, theirs = os.path.join(bpffs_dir, "ours"), os.path.join(bpffs_dir, "theirs")
    res = CliRunner().invoke(loadall, [path, ours])
    assert res.exit_code == 0, res.output
    subprocess.run(["bpftool", "prog", "loadall", path, theirs], check=True, capture_output=True)
    assert sorted(os.listdir(ours)) == sorted(os.listdir(theirs)) == ["sock_main", "sock_second"]


def test_run_cli_prints_maps(build):
    from click.testing import CliRunner

    from ebpfpy.cli.objects import run
    stop = threading.Event()
    t = threading.Thread(target=_hammer, args=(os.getpid, stop))
    t.start()
    try:
        res = CliRunner().invoke(run, [build("core_task"), "--duration", "0.5",
                                       "--set", f"target_tgid={os.getpid()}"])
    finally:
        stop.set()
        t.join()
    assert res.exit_code == 0, res.output
    assert f"target_tgid = {os.getpid()}" in res.output
    assert f"@events[{os.getpid()}]: {{'tgid': {os.getpid()}, 'ppid': {os.getppid()}" in res.output
    assert "@counters[3]: 16" in res.output
    # ring buffer records, printed as they came, typed as struct event (the object's BTF has it)
    assert f"@rb:\n  tgid={os.getpid()}\n  ppid={os.getppid()}\n  magic=4660\n  comm=" in res.output


def test_core_missing_field_is_one_clear_line(build):
    # as libbpf: the read is poisoned, the verifier reaches it, and the error names the relocation
    with load_object(build("bad_core")) as obj, pytest.raises(LoadError) as ei:
        obj.load()
    msg = str(ei.value)
    assert "\n" not in msg
    assert "struct task_struct" in msg and "no_such_field_in_kernel" in msg
    assert "prog 'read_missing': relo #0:" in msg and "bad CO-RE relocation" in msg
    assert obj.btf_fd is None and obj.maps == {}  # nothing left open after the failure


def test_bad_inputs(build, tmp_path):
    from pathlib import Path
    good = Path(build("core_task")).read_bytes()
    cases = {
        "trunc.o": (good[:2000], "truncated"),
        "junk.o": (b"this is not an object", "not an ELF file"),
        "host.o": (Path("/bin/true").read_bytes(), "not a BPF object"),
    }
    for fname, (data, expect) in cases.items():
        p = tmp_path / fname
        p.write_bytes(data)
        with pytest.raises(ObjectError, match=expect) as ei:
            load_object(str(p))
        assert "\n" not in str(ei.value) and fname in str(ei.value)
    with pytest.raises(ObjectError, match="No such file"):
        load_object(str(tmp_path / "missing.o"))
    # without -g there is no .BTF, which BTF-defined maps need
    with pytest.raises(ObjectError, match=r"\.maps section without \.BTF"):
        load_object(build("calls_data", "-g0"))


def test_verifier_rejection_names_program(build, tmp_path):
    # corrupt the first instruction of the program section into an invalid opcode
    from ebpfpy.elf.reader import read_object
    path = build("calls_data")
    raw = read_object(path)
    obj = load_object(path)
    sec = raw.section_named("socket")
    from ebpfpy.elf.objfile import BPFObject
    sec.data = b"\xff" + sec.data[1:]
    bad = BPFObject(raw)
    with bad, pytest.raises(LoadError, match="loading program 'sock_main' failed") as ei:
        bad.load()
    assert ei.value.log
    # the reason is the log's last word before the statistics the verifier always appends
    reason = str(ei.value).split("(verifier: ", 1)[1]
    assert "opcode" in reason and not reason.startswith("processed "), str(ei.value)
    obj.close()


def test_tp_btf_attach_by_section(build):
    with load_object(build("tp_btf")) as obj:
        obj.globals["target_tgid"] = os.getpid()
        obj.globals["watch_id"] = 110  # __NR_getppid on x86_64
        obj.attach_all()
        assert len(obj.attachments) == 1
        for _ in range(5):
            os.getppid()
        assert obj.globals["seen"] == 5


def test_legacy_maps_section(build):
    with load_object(build("legacy_maps")) as obj:
        spec = obj.map_specs["legacy_counts"]
        assert (spec.map_type, spec.key_size, spec.value_size, spec.max_entries) == (2, 4, 8, 2)
        obj.load()
        prog = obj.programs["legacy"].program
        assert prog.test_run(bytes(64)).retval == 3
        assert obj.maps["legacy_counts"].lookup_raw(struct.pack("<I", 1)) == struct.pack("<Q", 7)


def test_object_btf_sanitised_forms_load(build):
    """The fixed-up BTF and its old-kernel downgrade both pass the kernel's BTF checker."""
    from ebpfpy.btf import Kind
    from ebpfpy.elf.sanitize import downgrade
    from ebpfpy.sys import bpf
    obj = load_object(build("core_task"))
    ds = obj.btf[obj.btf.find(".data", Kind.DATASEC)]
    assert ds.size == 24 and [v.offset for v in ds.vars] == [0, 8, 16]
    old = downgrade(obj.btf)
    assert old.count == obj.btf.count
    assert all(old.kind_of(i) not in (Kind.DECL_TAG, Kind.TYPE_TAG, Kind.FLOAT, Kind.ENUM64) for i in old.ids())
    for blob in (obj.btf.data, old.data):
        bpf.btf_load(blob).close()


@pytest.mark.parametrize("fmt", ["c", "raw"])
def test_btf_dump_of_object_matches_bpftool(bpftool, build, fmt):
    from click.testing import CliRunner

    from ebpfpy.cli.btf import btf
    path = build("core_task")
    theirs = subprocess.run(["bpftool", "btf", "dump", "file", path, "format", fmt], check=True,
                            capture_output=True, text=True).stdout
    res = CliRunner().invoke(btf, ["dump", path, "--format", fmt])
    assert res.exit_code == 0, res.output
    assert res.output == theirs


def test_btf_dump_cli_on_object(build):
    from click.testing import CliRunner

    from ebpfpy.cli.btf import btf
    res = CliRunner().invoke(btf, ["dump", build("calls_data"), "--type", "poly", "--format", "raw"])
    assert res.exit_code == 0, res.output
    assert "FUNC 'poly'" in res.output and "linkage=global" in res.output
    res = CliRunner().invoke(btf, ["dump", "--type", "struct list_head"])
    assert res.output.startswith("struct list_head {\n\tstruct list_head *next;")
    res = CliRunner().invoke(btf, ["dump", build("calls_data"), "--type", "nope"])
    assert res.exit_code == 1


def test_pinned_by_name_map_is_shared(build, bpffs_dir):
    path = build("pinned_map")
    with load_object(path) as a, load_object(path) as b:
        a.load(pin_root=bpffs_dir)
        assert os.path.exists(os.path.join(bpffs_dir, "shared_count"))
        b.load(pin_root=bpffs_dir)
        assert a.maps["shared_count"].info().id == b.maps["shared_count"].info().id
        a.programs["count_runs"].program.test_run(bytes(64))
        b.programs["count_runs"].program.test_run(bytes(64))
        assert b.maps["shared_count"].lookup_raw(b"\0\0\0\0") == struct.pack("<Q", 2)
        assert b.maps["shared_count"][0] == 2  # typed through BTF, also when reopened from the pin


def test_kconfig_externs(build):
    _needs("kconfig")
    import gzip
    import re
    with gzip.open("/proc/config.gz", "rt") as f:
        cfg = dict(re.findall(r"^(CONFIG_\w+)=(.*)$", f.read(), re.MULTILINE))
    rel = [int(x) for x in re.findall(r"\d+", os.uname().release)[:3]]
    with load_object(build("kconfig")) as obj:
        obj.load()
        obj.programs["read_kconfig"].test_run(bytes(64))
        out = struct.unpack("<6Q", obj.globals["out"])
        localversion = obj.globals["localversion"]
    tri = {"y": 1, "m": 2}
    assert out[0] == (rel[0] << 16) + (rel[1] << 8) + min(rel[2], 255)
    assert out[1] == 1  # CONFIG_BPF_SYSCALL=y, or we could not be here
    assert out[2] == tri.get(cfg.get("CONFIG_BPF_JIT"), 0)
    assert out[3] == int(cfg["CONFIG_HZ"])
    assert out[4:] == (0, 42)  # the weak extern the kernel does not have reads 0
    assert localversion.rstrip(b"\0").decode() == cfg["CONFIG_LOCALVERSION"].strip('"')[:15]


def test_kfuncs_through_ksym_externs(build):
    _need_kfuncs()
    with load_object(build("ksyms")) as obj:
        obj.globals["target_tgid"] = os.getpid()
        obj.globals["lookup_pid"] = os.getppid()
        obj.attach_all()
        os.getpid()
        os.getpid()
        res = struct.unpack("<3Q", obj.globals["res"])
    assert res == (2, os.getppid(), 2)  # two calls; the parent's tgid; the weak kfunc is absent


def test_unknown_section_needs_autoload_off(build):
    from ebpfpy.elf.objfile import BPFObject
    from ebpfpy.elf.reader import read_object
    raw = read_object(build("legacy_maps"))
    raw.section_named("socket").name = "weird/thing"
    obj = BPFObject(raw)
    with obj, pytest.raises(ObjectError, match="section 'weird/thing', which names no known program type"):
        obj.load()
    obj = BPFObject(raw)
    with obj:
        obj.programs["legacy"].autoload = False
        obj.load()
        assert obj.programs["legacy"].program is None and "legacy_counts" in obj.maps
