"""Symbolization: synthetic kallsyms, and real ELF files compiled at test
time and resolved in a live process (PIE executable, shared library, C++)."""
import os
import shutil
import subprocess

import pytest

from ebpfpy.events import symbols
from ebpfpy.events.symbols import (
    ElfSymbols,
    KernelSymbols,
    ProcessSymbols,
    debug_file_candidates,
    demangle,
    parse_maps,
)

KALLSYMS = """\
ffffffff81000000 T _stext
ffffffff81000000 T _text
ffffffff81000010 T __entry_text_start
0000000000000000 A fixed_percpu_data
ffffffff81001000 t do_thing
ffffffff81000800 T earlier_fn
ffffffff81002000 U undefined_thing
ffffffffc0001000 t mod_fn\t[mymod]
"""


@pytest.fixture
def ksyms(tmp_path):
    path = tmp_path / "kallsyms"
    path.write_text(KALLSYMS)
    return KernelSymbols(str(path))


def test_kernel_lookup_offsets_and_aliases(ksyms):
    assert ksyms.ksym(0xFFFFFFFF81001000) == "do_thing"
    assert ksyms.ksym(0xFFFFFFFF81001020, offset=True) == "do_thing+32"
    assert ksyms.ksym(0xFFFFFFFF81000004, offset=True) == "_text+4"  # the last alias in file order wins
    assert ksyms.ksym(0xFFFFFFFF81000900, offset=True) == "earlier_fn+256"  # file order != address order
    assert ksyms.ksym(0xFFFFFFFFC0001008, offset=True) == "mod_fn+8"
    assert ksyms.ksym(0x1000) == "0x1000"  # below every symbol: hex as bpftrace prints it
    assert ksyms.ksym(0) == "0"  # ... without the base for zero (C++ showbase)


def test_kernel_skips_absolute_and_undefined(ksyms):
    assert ksyms.ksym(0xFFFFFFFF81002010, offset=True) == "do_thing+4112"
    with pytest.raises(KeyError):
        ksyms.kaddr("undefined_thing")
    with pytest.raises(KeyError):
        ksyms.kaddr("no_such_symbol")
    assert ksyms.kaddr("earlier_fn") == 0xFFFFFFFF81000800


def test_kernel_table_is_loaded_lazily(tmp_path):
    ks = KernelSymbols(str(tmp_path / "missing"))  # no error until first use
    with pytest.raises(FileNotFoundError):
        ks.ksym(0)


def test_real_kallsyms_round_trip():
    ks = symbols.kernel_symbols()
    addr = ks.kaddr("do_syscall_64")
    assert ks.ksym(addr + 5, offset=True) == "do_syscall_64+5"
    assert symbols.ksym(addr) == "do_syscall_64"


def test_parse_maps():
    text = (
        "55d0c0a00000-55d0c0a01000 r--p 00000000 fd:01 1234    /usr/bin/prog\n"
        "55d0c0a01000-55d0c0a02000 r-xp 00001000 fd:01 1234    /usr/bin/prog\n"
        "7ffd1000-7ffd3000 rw-p 00000000 00:00 0 \n"
        "7ffe0000-7ffe2000 r-xp 00000000 00:00 0    [vdso]\n"
        "7f0000000000-7f0000001000 r-xp 00002000 fd:01 99 /tmp/a b (deleted)\n"
    )
    maps = parse_maps(text)
    assert [m.path for m in maps] == ["/usr/bin/prog", "/usr/bin/prog", "", "[vdso]", "/tmp/a b (deleted)"]
    assert maps[1].start == 0x55D0C0A01000 and maps[1].offset == 0x1000 and maps[1].inode == 1234
    assert maps[1].perms == "r-xp"


def test_demangle_batch():
    if shutil.which("c++filt") is None:
        assert demangle(["_Z2tfIiEvT_"]) == {}
        return
    out = demangle(["_Z2tfIiEvT_", "_ZN2ns1K3runEi", "main"])
    assert out == {"_Z2tfIiEvT_": "void tf<int>(int)", "_ZN2ns1K3runEi": "ns::K::run(int)"}


LIB_C = """
__attribute__((noinline)) int foo_func(int x) { return x * 3 + 1; }
"""

PROG_C = r"""
#include <stdio.h>
#include <unistd.h>
int foo_func(int);
__attribute__((noinline)) void func_a(void) { }
__attribute__((noinline)) static void local_fn(void) { }
int main(void) {
    printf("%p %p %p\n", (void *)func_a, (void *)local_fn, (void *)foo_func);
    fflush(stdout);
    char c; (void)!read(0, &c, 1);
    return foo_func(0) - 1;
}
"""

PROG_CC = r"""
#include <stdio.h>
#include <unistd.h>
namespace ns { struct K { __attribute__((noinline)) static int run(int n) { return n + 1; } }; }
template <class T> __attribute__((noinline)) T tf(T n) { return ns::K::run(n); }
int main() {
    printf("%p %p\n", (void *)&tf<int>, (void *)&ns::K::run);
    fflush(stdout);
    char c; (void)!read(0, &c, 1);
    return tf<int>(0) - 1;
}
"""


def _run(args, **kw):
    subprocess.run(args, check=True, capture_output=True, **kw)


@pytest.fixture(scope="module")
def live_c(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    d = tmp_path_factory.mktemp("symprog")
    (d / "lib.c").write_text(LIB_C)
    (d / "prog.c").write_text(PROG_C)
    _run(["gcc", "-O0", "-shared", "-fPIC", "-o", str(d / "libfoo.so"), str(d / "lib.c")])
    _run(["gcc", "-O0", "-fPIE", "-pie", "-o", str(d / "prog"), str(d / "prog.c"),
          f"-L{d}", "-lfoo", f"-Wl,-rpath,{d}"])
    proc = subprocess.Popen([str(d / "prog")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        addrs = [int(x, 16) for x in proc.stdout.readline().split()]
        yield proc.pid, addrs, d
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


def test_pie_executable_and_shared_library(live_c):
    pid, (func_a, local_fn, foo_func), d = live_c
    ps = ProcessSymbols(pid)
    assert ps.usym(func_a) == "func_a"
    assert ps.usym(func_a + 4, offset=True) == "func_a+4"
    assert ps.usym(local_fn + 1, offset=True) == "local_fn+1"  # .symtab (local) symbol
    assert ps.usym(foo_func + 7, offset=True, module=True) == f"foo_func+7 ({d}/libfoo.so)"
    assert ps.usym(8, module=True) == "0x8 ([unknown])"
    assert symbols.usym(pid, func_a + 2, offset=True) == "func_a+2"


def test_elf_symbols_map_file_offsets_to_vaddrs(live_c):
    pid, (func_a, _, _), d = live_c
    elf = ElfSymbols(str(d / "prog"))
    m = ProcessSymbols(pid).mapping(func_a)
    vaddr = elf.vaddr(func_a - m.start + m.offset)
    assert elf.lookup(vaddr) == ("func_a", 0)
    assert len(elf) >= 3


def test_exited_process_prints_hex():
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert ProcessSymbols(proc.pid).usym(0x401000) == "0x401000"


@pytest.fixture(scope="module")
def live_cc(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    d = tmp_path_factory.mktemp("symprogcc")
    (d / "prog.cc").write_text(PROG_CC)
    _run(["g++", "-O0", "-o", str(d / "prog"), str(d / "prog.cc")])
    proc = subprocess.Popen([str(d / "prog")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        yield proc.pid, [int(x, 16) for x in proc.stdout.readline().split()]
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


def test_cpp_names_demangled_like_bpftrace(live_cc):
    pid, (tf, run) = live_cc
    ps = ProcessSymbols(pid)
    if shutil.which("c++filt") is None:
        assert ps.usym(tf) == "_Z2tfIiET_S0_"
    else:
        assert ps.usym(tf + 3, offset=True) == "int tf<int>(int)+3"
        assert ps.usym(run) == "ns::K::run(int)"
    raw = ProcessSymbols(pid, demangle_names=False)
    assert raw.usym(run) == "_ZN2ns1K3runEi"


def test_own_process_libc():
    import ctypes

    libc = ctypes.CDLL(None)
    addr = ctypes.cast(libc.qsort, ctypes.c_void_p).value
    text = ProcessSymbols(os.getpid()).usym(addr + 1, offset=True, module=True)
    name, _, module = text.partition(" ")
    assert name.endswith("+1") and "qsort" in name
    assert "libc" in module


def test_debug_file_candidates_order():
    got = debug_file_candidates("/usr/lib/x86_64-linux-gnu/libfoo.so.1", "93ac61ec5a", "libfoo.debug",
                                root="/usr/lib/debug")
    assert got[0] == "/usr/lib/debug/.build-id/93/ac61ec5a.debug"
    assert got[1:] == [
        "/usr/lib/x86_64-linux-gnu/libfoo.debug",
        "/usr/lib/x86_64-linux-gnu/.debug/libfoo.debug",
        "/usr/lib/debug/usr/lib/x86_64-linux-gnu/libfoo.debug",
    ]
    assert debug_file_candidates("/bin/x", None, None) == []


def test_stripped_file_uses_its_debug_file(tmp_path):
    """A stripped copy with a .gnu_debuglink finds its local symbols in the
    debug file next to it (objcopy --only-keep-debug, the Debian -dbg way)."""
    for tool in ("gcc", "objcopy", "strip"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    src = tmp_path / "p.c"
    src.write_text("static int __attribute__((noinline)) hidden(int x) { return x + 1; }\n"
                   "int main(int c, char **v) { return hidden(c); }\n")
    exe = tmp_path / "p"
    _run(["gcc", "-O0", "-o", str(exe), str(src)])
    full = ElfSymbols(str(exe))
    _run(["objcopy", "--only-keep-debug", str(exe), str(tmp_path / "p.debug")])
    _run(["strip", "--strip-all", str(exe)])
    _run(["objcopy", f"--add-gnu-debuglink={tmp_path / 'p.debug'}", str(exe)], cwd=str(tmp_path))
    stripped = ElfSymbols(str(exe), debug_root=str(tmp_path / "none"))
    assert stripped.debug_file == str(tmp_path / "p.debug")
    addr = full.address("hidden")
    assert addr and full.address("no_such_function") is None
    assert stripped.lookup(addr + 2) == ("hidden", 2)
    (tmp_path / "p.debug").unlink()
    assert ElfSymbols(str(exe), debug_root=str(tmp_path / "none")).lookup(addr) is None
