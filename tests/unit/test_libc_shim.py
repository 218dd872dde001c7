"""ebpfpy.sys._libc: bpf(), perf_event_open() and ioctl() through cffi's ABI mode (no compiler).

The declarations are pre-parsed into ebpfpy/sys/_libc_ffi.py by csrc/build_shim.py; these tests
check that the two agree, that importing needs neither pycparser nor a compiled module of
ebpfpy's, that the syscall numbers match the installed kernel headers, and (as root) that the
fixed-argument and the variadic calling styles behave the same, errno included.
"""
from __future__ import annotations

import errno
import importlib.util
import os
import re
import subprocess
import sys
import threading

import pytest

from ebpfpy.sys import _libc, _shim
from ebpfpy.sys.errors import BPFError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _build_shim():
    spec = importlib.util.spec_from_file_location("build_shim", os.path.join(ROOT, "csrc", "build_shim.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_declarations_match_the_cdef():
    """Regenerate with `python3 csrc/build_shim.py` when this fails."""
    from cffi import FFI

    build = _build_shim()
    fresh = FFI()
    fresh.cdef(build.CDEF)
    fresh_lib = fresh.dlopen(None)
    committed = _libc.ffi
    for name in build.FUNCTIONS:
        assert committed.typeof(getattr(_libc.libc, name)).cname == fresh.typeof(getattr(fresh_lib, name)).cname
    for name in build.TYPEDEFS:
        assert committed.typeof(name).cname == fresh.typeof(name).cname
    assert committed.typeof("ebpfpy_bpf_fn").cname == "long(*)(long, long, void *, unsigned long)"


def test_generated_module_is_what_the_generator_writes():
    """Byte for byte, with this cffi (the declarations check above is the one that matters across
    cffi versions, whose output format may change)."""
    build = _build_shim()
    with open(build.TARGET) as f:
        committed = f.read()
    if "_version = 0x2601" not in build.source():
        pytest.skip("this cffi writes another format")
    assert committed == build.source()


def test_import_needs_no_parser_no_cffi_package_and_no_compiled_module():
    code = ("import sys; sys.modules['pycparser'] = None; import ebpfpy.sys.bpf, ebpfpy.sys.perf; "
            "print('cffi' in sys.modules, sorted(m for m in sys.modules if m.startswith('ebpfpy.sys')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    loaded_cffi, modules = out.split(" ", 1)
    assert loaded_cffi == "False"
    assert "ebpfpy.sys._libc" in modules and "ebpfpy.sys.privileges" not in modules
    package = os.path.join(ROOT, "ebpfpy")
    built = [os.path.join(d, f) for d, _, files in os.walk(package) for f in files if f.endswith((".so", ".pyd"))]
    assert built == []


def test_packaging_declares_no_extension():
    assert not os.path.exists(os.path.join(ROOT, "setup.py"))
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        text = f.read()
    requires = re.search(r"^requires = \[(.*)\]$", text, re.MULTILINE).group(1)
    assert "cffi" not in requires and "cffi_modules" not in text
    assert re.search(r'dependencies = \[[^]]*"cffi', text), "cffi stays a run-time dependency (ABI mode)"


@pytest.mark.parametrize(("machine", "family"), [
    ("x86_64", "x86"), ("i686", "x86"), ("aarch64", "arm"), ("armv7l", "arm"), ("riscv64", "riscv"),
    ("ppc64le", "ppc"), ("s390x", "s390"), ("loongarch64", "loongarch"), ("mips64", "mips64"),
])
def test_machine_families(machine, family):
    assert _libc.machine_family(machine) == family


def _header_number(name: str) -> int | None:
    """__NR_<name> from the installed headers for this interpreter's ABI (x86 only)."""
    header = {("x86", 64): "asm/unistd_64.h", ("x86", 32): "asm/unistd_32.h"}.get((_libc.FAMILY, _libc.POINTER_BITS))
    for base in ("/usr/include", "/usr/include/x86_64-linux-gnu", "/usr/include/i386-linux-gnu"):
        path = os.path.join(base, header or "-")
        if header and os.path.exists(path):
            with open(path) as f:
                found = re.search(rf"#define __NR_{name}\s+(\d+)", f.read())
            return int(found.group(1)) if found else None
    return None


def test_syscall_numbers_match_the_installed_headers():
    expected = (_header_number("bpf"), _header_number("perf_event_open"))
    if None in expected:
        pytest.skip("no uapi unistd header for this architecture here")
    assert _libc.NUMBERS == expected


def test_unknown_architecture_is_a_clear_error():
    bpf, perf_event_open, _ = _libc._calls(True, None)
    with pytest.raises(BPFError) as caught:
        bpf(0, _libc.ffi.NULL, 0)
    assert caught.value.errno == errno.ENOSYS
    assert "does not know bpf()'s syscall number" in str(caught.value)
    with pytest.raises(BPFError, match="perf_event_open"):
        perf_event_open(_libc.ffi.NULL, 0, -1, -1, 0)


def test_compatibility_names():
    """The compiled shim's names, for code written against it (tests/vm's guest test)."""
    assert _shim.ffi is _libc.ffi
    assert _shim.lib.ebpfpy_bpf is _libc.bpf
    assert _shim.lib.ebpfpy_perf_event_open is _libc.perf_event_open
    assert _shim.lib.ebpfpy_ioctl is _libc.ioctl


def _array_attr():
    from ebpfpy.sys.consts import MapType
    from ebpfpy.sys.layouts import MAP_CREATE

    return MAP_CREATE.pack(map_type=int(MapType.ARRAY), key_size=4, value_size=8, max_entries=1)


@pytest.mark.kernel
@pytest.mark.parametrize("fixed", [True, False], ids=["fixed-arguments", "variadic"])
def test_both_calling_styles(fixed):
    from ebpfpy.sys import perf
    from ebpfpy.sys.consts import Cmd
    from ebpfpy.sys.layouts import MAP_ELEM

    bpf, perf_event_open, ioctl = _libc._calls(fixed, _libc.NUMBERS)
    ffi = _libc.ffi
    attr, size = _array_attr()
    fd = bpf(int(Cmd.MAP_CREATE), ffi.from_buffer(attr), size)
    assert fd > 0
    try:
        key, value = bytearray(b"\x05\0\0\0"), bytearray(8)  # index 5 of a 1-entry array: ENOENT
        lookup, lsize = MAP_ELEM.pack(map_fd=fd, key=int(ffi.cast("uintptr_t", ffi.from_buffer(key))),
                                      value=int(ffi.cast("uintptr_t", ffi.from_buffer(value))))
        assert bpf(int(Cmd.MAP_LOOKUP_ELEM), ffi.from_buffer(lookup), lsize) == -errno.ENOENT
        assert ioctl(fd, perf.PERF_EVENT_IOC_ENABLE, 0) == -errno.ENOTTY  # a map fd is no perf event
        assert ioctl(-1, perf.PERF_EVENT_IOC_ENABLE, 0) == -errno.EBADF
    finally:
        os.close(fd)
    pattr = perf.pack_attr(perf.PerfType.SOFTWARE, perf.SwEvent.DUMMY, disabled=True)
    pfd = perf_event_open(ffi.from_buffer(pattr), 0, -1, -1, perf.PERF_FLAG_FD_CLOEXEC)
    assert pfd > 0
    try:
        assert ioctl(pfd, perf.PERF_EVENT_IOC_ENABLE, 0) == 0
    finally:
        os.close(pfd)
    pattr = perf.pack_attr(0xFFFF, 0)  # no such PMU type
    assert perf_event_open(ffi.from_buffer(pattr), 0, -1, -1, perf.PERF_FLAG_FD_CLOEXEC) == -errno.ENOENT


@pytest.mark.kernel
def test_errno_is_per_thread():
    """Two threads failing with different errnos at the same time each read their own."""
    from ebpfpy.sys import perf

    results: dict[str, set[int]] = {"ebadf": set(), "enotty": set()}
    with open("/dev/null") as devnull:
        def fail(name, fd):
            for _ in range(20000):
                results[name].add(_libc.ioctl(fd, perf.PERF_EVENT_IOC_ENABLE, 0))

        threads = [threading.Thread(target=fail, args=("ebadf", -1)),
                   threading.Thread(target=fail, args=("enotty", devnull.fileno()))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == {"ebadf": {-errno.EBADF}, "enotty": {-errno.ENOTTY}}


def test_perf_attr_values_out_of_range_are_value_errors():
    """A period or address a perf_event_attr field cannot hold is the caller's ValueError, naming
    the field (pybpftrace reports it as `ERROR: ...`), not a struct.error from deep inside."""
    from ebpfpy.sys import perf

    with pytest.raises(ValueError, match=r"perf_event_attr\.sample_period cannot be -1"):
        perf.pack_attr(perf.PerfType.SOFTWARE, perf.SwEvent.CPU_CLOCK, sample_period=-1)
