"""pybpftrace's kfunc/kretfunc probes for real (run in the qemu guest; skipped without fentry).

Each test runs ``python -m ebpfpy.bpftrace`` as a child with this pid as $1,
waits for its "Attaching" line, reads /dev/zero READ_SIZE bytes at a time a
known number of times, stops it with SIGINT and checks the maps it prints.
The scripts filter on this pid and that unusual size, so nothing else counts.
"""
import os
import subprocess
import sys

import pytest
from helpers import map_entries, trace_while

pytestmark = [pytest.mark.kernel, pytest.mark.fentry]

PYBPFTRACE = [sys.executable, "-m", "ebpfpy.bpftrace"]
READ_SIZE = 4321
READS = 9
FILTER = f"/pid == $1 && args->count == {READ_SIZE}/"


def zero_reads(n=READS, size=READ_SIZE):
    fd = os.open("/dev/zero", os.O_RDONLY)
    try:
        for _ in range(n):
            assert len(os.read(fd, size)) == size
    finally:
        os.close(fd)


def run_with_reads(script: str) -> str:
    def reads():
        zero_reads()
        zero_reads(3, READ_SIZE + 1)  # filtered out

    return trace_while(script, reads, timeout=120)


def test_kfunc_count_func_and_args():
    out = run_with_reads(f"kfunc:vfs_read {FILTER} {{ @n = count(); @f[func, probe] = count(); "
                         "@c = sum(args->count); }")
    assert out.startswith("Attaching 1 probe...\n")
    assert map_entries(out, "n") == {None: READS}
    assert map_entries(out, "f") == {"vfs_read, kfunc:vfs_read": READS}
    assert map_entries(out, "c") == {None: READS * READ_SIZE}


def test_kretfunc_retval_alias_and_struct_member():
    rdev = (os.major(os.stat("/dev/zero").st_rdev) << 20) | os.minor(os.stat("/dev/zero").st_rdev)
    out = run_with_reads(f"fr:vfs_read {FILTER} {{ @ret[retval] = count(); "
                         "@dev[((struct file *)args->file)->f_inode->i_rdev] = count(); }")
    assert map_entries(out, "ret") == {str(READ_SIZE): READS}
    assert map_entries(out, "dev") == {str(rdev): READS}


def test_kfunc_arg_builtin_rejected():
    proc = subprocess.run([*PYBPFTRACE, "-e", "kfunc:vfs_read { @ = arg0; }"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode != 0
    assert "The arg0 builtin can only be used with 'kprobes', 'uprobes' and 'usdt' probes" in proc.stderr


def test_kfunc_btf_member_chain_through_codegen():
    """``args->file->f_inode->i_rdev`` straight from the parameter's BTF type.

    Semantic analysis does not type kfunc ``args`` from BTF yet (it rejects
    ``->`` on them), so this drives the parser and compiler directly and loads
    and attaches the programs the way the runtime does."""
    import contextlib

    from ebpfpy.attach import attach
    from ebpfpy.bpftrace.codegen import Env, compile_script
    from ebpfpy.bpftrace.parser import parse
    from ebpfpy.bpftrace.runtime import Runtime
    from ebpfpy.maps import Map
    from ebpfpy.progs import Program

    st = os.stat("/dev/zero").st_rdev
    rdev = (os.major(st) << 20) | os.minor(st)  # the kernel's dev_t encoding
    src = (f"kretfunc:vfs_read /pid == {os.getpid()} && args->count == {READ_SIZE}/ "
           "{ @dev[args->file->f_inode->i_rdev, retval] = count(); }")
    script = compile_script(parse(src), Env(source=src))
    (plan,) = script.probes
    assert plan.attach_btf_id and plan.expected_attach_type is not None
    runtime = Runtime(script, writer=None)
    with contextlib.ExitStack() as stack:
        for mp in script.maps.values():
            m = Map.create(mp.map_type, mp.key_size, mp.value_size, mp.max_entries)
            stack.callback(m.close)
            runtime.maps[mp.name] = m
        prog = Program.load(plan.prog_type, plan.builder.build(maps=runtime.maps),
                            expected_attach_type=plan.expected_attach_type, attach_btf_id=plan.attach_btf_id)
        stack.callback(prog.close)
        for att in attach(prog, plan.probe):
            stack.callback(att.close)
        zero_reads()
        zero_reads(2, READ_SIZE + 1)
        data = runtime.read_map(script.maps["@dev"])
    assert [(tuple(k), v) for k, v in data.entries] == [((rdev, READ_SIZE), READS)]
