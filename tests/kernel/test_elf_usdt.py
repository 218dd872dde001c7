"""USDT programs written with libbpf's usdt.bpf.h: the loader fills the spec maps as libbpf does.

tests/bpf_objects/usdt_args.bpf.c (clang-19, libbpf-dev's headers) reads the arguments of
tests/progs/usdt_target.c's probes with BPF_USDT / bpf_usdt_arg(); the values it records
must be the ones the C program passed: libbpf's own attach cannot run from bpftool, so the
arguments are the reference. The target is built at -O0 (arguments in memory: reg-deref
specs) and -O2 (in registers, sub-registers included, and one SIB operand, which the
installed usdt.bpf.h cannot express: refused, as libbpf refuses it).
"""
import os
import shutil
import struct
import subprocess

import pytest
from helpers import ebpfpy_run, write_vmlinux_h
from test_attach_common import compile_c, dynamic_events, own_fds

from ebpfpy.attach import ProbeNotFoundError
from ebpfpy.elf import ObjectError, load_object

HERE = os.path.dirname(__file__)
SRC = os.path.join(HERE, "..", "bpf_objects")
N = 9

pytestmark = [pytest.mark.kernel, pytest.mark.btf, pytest.mark.clang, pytest.mark.uprobes]


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    if not os.path.exists("/usr/include/bpf/usdt.bpf.h"):
        pytest.skip("needs libbpf-dev's usdt.bpf.h")
    d = tmp_path_factory.mktemp("elf_usdt")
    write_vmlinux_h(d)
    return d


@pytest.fixture(scope="module")
def targets(out):
    return {flag: compile_c("usdt_target.c", str(out), flag, out_name=f"usdt_target{flag}") for flag in ("-O0", "-O2")}


def build_obj(out, target: str, name: str) -> str:
    """usdt_args.bpf.c with its usdt/PATH:ebpfpy_test:hit section naming ``target``."""
    obj = str(out / f"{name}.o")
    multiarch = subprocess.run(["gcc", "-dumpmachine"], capture_output=True, text=True).stdout.strip()
    subprocess.run(["clang-19", "-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86", f'-DTARGET="{target}"',
                    "-I", str(out), "-I", SRC, "-idirafter", f"/usr/include/{multiarch}",
                    "-c", os.path.join(SRC, "usdt_args.bpf.c"), "-o", obj], check=True)
    return obj


@pytest.fixture(scope="module")
def objs(out, targets):
    return {flag: build_obj(out, t, f"usdt_args{flag}") for flag, t in targets.items()}


def run_target(target: str, n: int = N) -> int:
    """Runs the target; returns how many times it saw the hit semaphore raised."""
    return int(subprocess.run([target, str(n)], capture_output=True, text=True, check=True).stdout)


def expected_hits(n: int = N) -> list[dict]:
    return [{"i": 0, "neg": 0, "big": 0, "argc": 0, "err": 0}] + [
        {"i": i, "neg": -i, "big": i * 1000000007, "argc": 3, "err": -2} for i in range(1, n + 1)]


def test_arguments_from_memory_constants_and_registers(targets, objs):
    """-O0: hit's args are reg-deref specs, konst's a constant, idx's a register; exact values,
    bpf_usdt_arg_cnt(), -ENOENT past the last argument, bpf_usdt_cookie(), and the semaphore."""
    fds, events = own_fds(), dynamic_events()
    target = targets["-O0"]
    with load_object(objs["-O0"]) as obj:
        obj.load()
        auto = obj.attach_all()  # only on_hit: its section names the binary; the bare usdt ones do not
        assert [a.probe for a in auto] == [f"usdt:{target}:ebpfpy_test:hit"]
        obj.programs["on_konst"].attach_usdt(target, "ebpfpy_test", "konst", cookie=0xFEED)
        obj.programs["on_idx"].attach_usdt(target, "ebpfpy_test", "idx")
        assert run_target(target) == N  # the kernel raised hit's semaphore for us
        assert obj.globals.value("hits") == expected_hits()
        assert obj.globals["konst_sum"] == 5 * N and obj.globals["konst_calls"] == N
        assert obj.globals["konst_cookie"] == 0xFEED
        assert obj.globals["idx_calls"] == N
        assert obj.globals["idx_sum"] == sum(i * 10 + i % 4 for i in range(1, N + 1))
        assert obj.globals.value("last_state") == "USDT_SEEN"
    assert run_target(target) == 0  # detached: semaphore lowered again
    assert own_fds() == fds and dynamic_events() == events


def test_arguments_in_sub_registers_and_sib_refused(targets, objs):
    """-O2: ``-4@%eax -2@%di -8@%rcx``; idx's ``-8@-32(%rbp,%rdi,8)`` needs BPF_USDT_ARG_SIB,
    which libbpf-dev's usdt.bpf.h here lacks: a one-line error and nothing left attached."""
    target = targets["-O2"]
    with load_object(objs["-O2"]) as obj:
        obj.load()
        obj.attach_all()
        obj.programs["on_konst"].attach_usdt(target, "ebpfpy_test", "konst")
        fds = own_fds()
        with pytest.raises(ObjectError) as ei:
            obj.programs["on_idx"].attach_usdt(target, "ebpfpy_test", "idx")
        assert "\n" not in str(ei.value) and "-8@-32(%rbp,%rdi,8)" in str(ei.value)
        assert own_fds() == fds
        assert run_target(target) == N
        assert obj.globals.value("hits") == expected_hits()
        assert obj.globals["konst_sum"] == 5 * N and obj.globals["konst_cookie"] == 0
        assert obj.globals["idx_calls"] == 0


def _spec(obj, spec_id):
    from ebpfpy.sys import bpf
    spec = obj.map_specs["__bpf_usdt_specs"]
    raw = bpf.map_lookup_elem(obj.maps["__bpf_usdt_specs"], struct.pack("<i", spec_id), spec.value_size)
    from ebpfpy.btf import values
    return values.decode(obj.btf, spec.btf_value_type_id, raw)


def test_spec_map_layout_and_spec_ids(targets, objs):
    """The spec libbpf's parse_usdt_arg() makes of each argument, in the object's own layout;
    ids are handed out from 0 and reused once their attachment is closed."""
    from ebpfpy.codegen.ctx import PT_REGS_X86_64 as REGS
    target = targets["-O0"]
    u64 = (1 << 64) - 1
    with load_object(objs["-O0"]) as obj:
        obj.load()
        [hit] = obj.attach_all()
        konst = obj.programs["on_konst"].attach_usdt(target, "ebpfpy_test", "konst", cookie=7)
        spec = _spec(obj, 0)
        assert spec["arg_cnt"] == 3 and spec["usdt_cookie"] == 0
        deref = "BPF_USDT_ARG_REG_DEREF"
        assert spec["args"][:3] == [
            {"val_off": -8 & u64, "arg_type": deref, "reg_off": REGS["bp"], "arg_signed": True, "arg_bitshift": 32},
            {"val_off": -18 & u64, "arg_type": deref, "reg_off": REGS["bp"], "arg_signed": True, "arg_bitshift": 48},
            {"val_off": -32 & u64, "arg_type": deref, "reg_off": REGS["bp"], "arg_signed": True, "arg_bitshift": 0}]
        spec = _spec(obj, 1)
        assert spec["arg_cnt"] == 1 and spec["usdt_cookie"] == 7
        assert spec["args"][0] == {"val_off": 5, "arg_type": "BPF_USDT_ARG_CONST", "reg_off": 0,
                                   "arg_signed": True, "arg_bitshift": 32}
        konst.close()
        idx = obj.programs["on_idx"].attach_usdt(target, "ebpfpy_test", "idx")
        spec = _spec(obj, 1)  # konst's id, reused
        assert spec["args"][0] == {"val_off": 0, "arg_type": "BPF_USDT_ARG_REG", "reg_off": REGS["ax"],
                                   "arg_signed": True, "arg_bitshift": 0}
        idx.close()
        hit.close()
        assert run_target(target) == 0


def test_ip_map_without_bpf_cookies(out, objs):
    """Where the kernel has no BPF cookies libbpf keys specs by the probe's address instead:
    a non-PIE target's addresses are its notes' pcs; the entries go when the attachment does."""
    from ebpfpy.attach.usdt import read_probes
    from ebpfpy.elf import usdt
    from ebpfpy.sys import bpf
    target = compile_c("usdt_target.c", str(out), "-O0", "-no-pie", out_name="usdt_target_nopie")
    with load_object(objs["-O0"]) as obj:
        obj.load()
        usdt.manager(obj).has_cookie = False  # as on a kernel without them
        att = obj.programs["on_konst"].attach_usdt(target, "ebpfpy_test", "konst")
        ipmap = obj.maps["__bpf_usdt_ip_to_spec_id"]
        [site] = [p for p in read_probes(target) if p.name == "konst"]
        assert bpf.map_get_next_key(ipmap, None, 8) == struct.pack("<q", site.pc)
        assert bpf.map_lookup_elem(ipmap, struct.pack("<q", site.pc), 4) == struct.pack("<I", 0)
        run_target(target)
        assert obj.globals["konst_sum"] == 5 * N  # cookie 0 on this kernel is spec 0 too
        att.close()
        assert bpf.map_get_next_key(ipmap, None, 8) is None


def test_errors_are_one_line(targets, objs):
    target = targets["-O0"]
    with load_object(objs["-O0"]) as obj:
        with pytest.raises(ObjectError, match="not loaded"):
            obj.programs["on_konst"].attach_usdt(target, "ebpfpy_test", "konst")
        obj.load()
        fds = own_fds()
        with pytest.raises(ProbeNotFoundError, match="no USDT probe ebpfpy_test:nope"):
            obj.programs["on_konst"].attach_usdt(target, "ebpfpy_test", "nope")
        assert own_fds() == fds


def test_loads_like_bpftool(objs, bpffs_dir):
    """bpftool (libbpf) cannot attach USDT, but loads the object: same xlated programs."""
    if not shutil.which("bpftool"):
        pytest.skip("bpftool (the libbpf reference) is not installed")
    from test_elf import _norm_xlated

    from ebpfpy.sys import bpf
    theirs = os.path.join(bpffs_dir, "bpftool")
    subprocess.run(["bpftool", "prog", "loadall", objs["-O0"], theirs], check=True, capture_output=True)
    with load_object(objs["-O0"]) as obj:
        obj.load()
        assert sorted(os.listdir(theirs)) == sorted(obj.programs)
        for name, prog in obj.programs.items():
            with bpf.obj_get(os.path.join(theirs, name)) as fd:
                assert _norm_xlated(prog.program.info().xlated) == _norm_xlated(bpf.prog_info(fd).xlated), name


@pytest.fixture
def bpffs_dir():
    from ebpfpy.bpffs import temp_dir
    with temp_dir("ebpfpy-usdt-") as d:
        yield d


def test_ebpfpy_run_attaches_usdt_section_and_sets_globals(targets, objs):
    """``ebpfpy run`` attaches the usdt/PATH:PROVIDER:NAME program with its specs; ``--set``
    takes the .rodata filter by its type; globals print typed (the struct array as dicts)."""
    target = targets["-O0"]
    seen = []
    stdout, _, line = ebpfpy_run(objs["-O0"], "--set", "only_i=0x3", "--set", "last_state=USDT_IDLE",
                               "--set", 'konst_sum=100', trigger=lambda: seen.append(run_target(target, 5)))
    assert line.startswith("Attached 1 probe(s)") and seen == [5], line
    hits = expected_hits(5)
    hits = [h if h["i"] == 3 else expected_hits(0)[0] for h in hits] + [expected_hits(0)[0]] * 4
    assert f"hits = {hits!r}" in stdout
    assert "only_i = 3" in stdout and "konst_sum = 100" in stdout and "last_state = 'USDT_SEEN'" in stdout
    assert "__bpf_usdt_specs" not in stdout  # libbpf's bookkeeping maps are not printed
    assert run_target(target) == 0


@pytest.mark.parametrize("assignment, message", [
    ("only_i=300000000000", "only_i: 300000000000 does not fit volatile const int"),
    ("last_state=FOO", "'FOO' is not an enumerator of enum ebpfpy_usdt_state (USDT_IDLE, USDT_SEEN)"),
    ("hits=[1", "hits: struct hit[10] takes JSON"),
    ('hits=[{"x": 1}]', "hits[0]: struct hit has no member 'x'"),
    ("nope=1", "no global variable 'nope' (it has: hits,"),
    ("only_i=abc", "only_i: 'abc' is not a number"),
])
def test_run_set_errors(objs, assignment, message):
    from click.testing import CliRunner

    from ebpfpy.cli.objects import run
    res = CliRunner().invoke(run, [objs["-O0"], "--duration", "0", "--set", assignment])
    assert res.exit_code == 1 and (res.exception is None or isinstance(res.exception, SystemExit))
    assert message in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_rodata_and_kconfig_are_frozen(objs):
    """As libbpf: .rodata and .kconfig maps are read-only for programs and frozen after load
    (user space cannot write them either); .bss stays writable."""
    import errno

    from ebpfpy.elf.mapdefs import BPF_F_RDONLY_PROG
    from ebpfpy.sys import bpf
    with load_object(objs["-O0"]) as obj:
        obj.globals["only_i"] = 4  # before load: part of the initial image
        obj.load()
        for section in (".rodata", ".kconfig"):
            m = obj.maps[section]
            assert bpf.map_info(m).flags & BPF_F_RDONLY_PROG, section
            with pytest.raises(OSError) as ei:
                bpf.map_update_elem(m, struct.pack("<I", 0), bytes(obj.map_specs[m.name].value_size))
            assert ei.value.errno == errno.EPERM, section
        assert obj.globals["only_i"] == 4
        with pytest.raises(ObjectError, match="frozen"):
            obj.globals["only_i"] = 5
        obj.globals["konst_sum"] = 11
        assert obj.globals["konst_sum"] == 11


def test_ebpfpy_run_attaches_bare_usdt_programs(targets, objs):
    """``--usdt PROG=BINARY:PROVIDER:NAME`` attaches a SEC("usdt") program as
    bpf_program__attach_usdt does (its arguments read through the spec maps); a program
    given no target is named as not attached."""
    target = targets["-O0"]
    stdout, _, line = ebpfpy_run(objs["-O0"], "--usdt", f"on_konst={target}:ebpfpy_test:konst",
                               trigger=lambda: run_target(target, 4))
    assert line.startswith("Attached 2 probe(s)") and line.rstrip().endswith("--usdt): on_idx. Hit Ctrl-C to end."), line
    assert f"konst_sum = {5 * 4}" in stdout and "konst_calls = 4" in stdout and "idx_calls = 0" in stdout
    stdout, _, line = ebpfpy_run(objs["-O0"], "--usdt", f"on_konst={target}:ebpfpy_test:konst",
                               "--usdt", f"on_idx={target}:ebpfpy_test:idx", trigger=lambda: run_target(target, 4))
    assert line.startswith("Attached 3 probe(s)") and "not attached" not in line, line
    assert "konst_calls = 4" in stdout and "idx_calls = 4" in stdout
    assert f"idx_sum = {sum(i * 10 + i % 4 for i in range(1, 5))}" in stdout
    assert run_target(target) == 0


def test_ebpfpy_run_usdt_pid_filter(targets, objs):
    """``--pid`` is attach_usdt's pid: another process's probes do not count."""
    target = targets["-O0"]
    stdout, _, _ = ebpfpy_run(objs["-O0"], "--pid", "1", "--usdt", f"on_konst={target}:ebpfpy_test:konst",
                            trigger=lambda: run_target(target, 4))
    assert "konst_calls = 0" in stdout


@pytest.mark.parametrize("usdt, message", [
    ("{t}:ebpfpy_test:konst", "which program? {o} has several SEC(\"usdt\") programs (on_konst, on_idx): "
                              "give PROG=BINARY:PROVIDER:NAME"),
    ("on_hit={t}:ebpfpy_test:konst", "no SEC(\"usdt\") program 'on_hit' in {o} (it has: on_konst, on_idx)"),
    ("on_konst=/nonexistent/bin:ebpfpy_test:konst", "--usdt on_konst=/nonexistent/bin:ebpfpy_test:konst: "
                                                    "binary not found: /nonexistent/bin"),
    ("on_konst={t}:ebpfpy_test:nope", "no USDT probe ebpfpy_test:nope in {t}"),
    ("on_konst=/etc/passwd:a:b", "not an ELF binary: /etc/passwd"),
])
def test_ebpfpy_run_usdt_errors(targets, objs, usdt, message):
    from click.testing import CliRunner

    from ebpfpy.cli.objects import run
    t, o = targets["-O0"], objs["-O0"]
    fds = own_fds()
    res = CliRunner().invoke(run, [o, "--duration", "0", "--usdt", usdt.format(t=t)])
    assert res.exit_code == 1 and (res.exception is None or isinstance(res.exception, SystemExit)), res.output
    assert message.format(t=t, o=o) in res.output and "Traceback" not in res.output
    assert res.output.startswith("ERROR: ") and len(res.output.strip().splitlines()) == 1
    assert own_fds() == fds


@pytest.mark.parametrize("usdt", ["on_konst={t}:ebpfpy_test", "{t}", "a=:b:c", "on_konst={t}::konst"])
def test_ebpfpy_run_usdt_syntax_errors(targets, objs, usdt):
    from click.testing import CliRunner

    from ebpfpy.cli.objects import run
    res = CliRunner().invoke(run, [objs["-O0"], "--duration", "0", "--usdt", usdt.format(t=targets["-O0"])])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "expected [PROG=]BINARY:PROVIDER:NAME" in res.output


def test_ebpfpy_run_usdt_without_bare_programs(out, targets):
    """An object whose only usdt program names its probe: --usdt has nothing to attach."""
    from click.testing import CliRunner

    from ebpfpy.cli.objects import run
    src = out / "usdt_named_only.bpf.c"
    src.write_text('#include "vmlinux.h"\n#include <bpf/bpf_helpers.h>\n#include <bpf/usdt.bpf.h>\n'
                   'char LICENSE[] SEC("license") = "GPL";\nlong n;\n'
                   f'SEC("usdt/{targets["-O0"]}:ebpfpy_test:konst") int BPF_USDT(k, long v) {{ n += v; return 0; }}\n')
    obj = str(out / "usdt_named_only.o")
    multiarch = subprocess.run(["gcc", "-dumpmachine"], capture_output=True, text=True).stdout.strip()
    subprocess.run(["clang-19", "-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86", "-I", str(out),
                    "-idirafter", f"/usr/include/{multiarch}", "-c", str(src), "-o", obj], check=True)
    res = CliRunner().invoke(run, [obj, "--duration", "0", "--usdt", f"{targets['-O0']}:ebpfpy_test:konst"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert 'has no SEC("usdt") program to attach' in res.output
