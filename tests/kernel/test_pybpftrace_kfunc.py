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


def _dev_zero_rdev() -> int:
    st = os.stat("/dev/zero").st_rdev
    return (os.major(st) << 20) | os.minor(st)  # the kernel's dev_t encoding


def test_kfunc_args_and_retval_typed_from_btf_without_casts():
    """``args->file->f_inode->i_rdev`` straight from the parameter's BTF type (struct file *),
    and ``retval`` as the function's ssize_t: a refused read is negative."""
    def reads():
        zero_reads()
        fd = os.open("/dev/null", os.O_WRONLY)
        try:
            for _ in range(2):
                with pytest.raises(OSError):
                    os.read(fd, READ_SIZE)  # vfs_read returns -EBADF
        finally:
            os.close(fd)

    out = trace_while("kretfunc:vfs_read /pid == $1 && args->count == " + str(READ_SIZE) + "/ "
                      "{ @dev[args->file->f_inode->i_rdev, retval] = count(); "
                      "@neg = sum(retval < 0); @min = min(retval); }", reads, timeout=120)
    assert map_entries(out, "dev")[f"{_dev_zero_rdev()}, {READ_SIZE}"] == READS
    assert map_entries(out, "neg") == {None: 2}
    assert map_entries(out, "min") == {None: -9}  # -EBADF


def test_kretfunc_struct_pointer_retval_and_str_of_a_member():
    """do_filp_open returns ``struct file *`` and takes ``struct filename *``: both chains typed."""
    opens = 4

    def open_zero():
        for _ in range(opens):
            os.close(os.open("/dev/zero", os.O_RDONLY))

    out = trace_while("kretfunc:do_filp_open /pid == $1/ "
                      "{ @[str(args->pathname->name), retval->f_inode->i_rdev] = count(); }",
                      open_zero, timeout=120)
    assert map_entries(out, "")[f"/dev/zero, {_dev_zero_rdev()}"] == opens


def test_path_of_a_struct_path_pointer_and_member():
    """path(): bpf_d_path, allowed in the functions the kernel lists (security_inode_getattr
    takes a struct path pointer; security_file_open a struct file, whose f_path member is one). The
    file's path is short: like any string it is cut to BPFTRACE_STRLEN."""
    target = f"/tmp/ebpfpy-path-{os.getpid()}"
    with open(target, "w") as f:
        f.write("x")

    def touch():
        os.stat(target)
        os.close(os.open(target, os.O_RDONLY))

    try:
        script = ("kfunc:security_inode_getattr /pid == $1/ { @g[path(args->path)] = count(); } "
                  "kfunc:security_file_open /pid == $1/ { @c[path(args->file->f_path)] = count(); }")
        out = trace_while(script, touch, timeout=120)
    finally:
        os.unlink(target)
    assert map_entries(out, "g").get(target, 0) >= 1, out
    assert map_entries(out, "c").get(target, 0) >= 1, out


def test_path_needs_a_struct_path():
    res = subprocess.run([*PYBPFTRACE, "-e", "kfunc:security_inode_getattr { printf(\"%s\\n\", path(args->path->dentry)); }"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    assert "path() expects a struct path" in res.stderr
