"""What libbpf's loader asks the running system: kernel version, kernel config, a few
feature probes, the architecture's syscall entry symbols.

Each answer is computed once per process (``forget()`` drops them, for tests).
"""
from __future__ import annotations

import functools
import gzip
import os
import platform
import re

# uname machine -> the prefix of the kernel's syscall wrappers (``__x64_sys_bpf``), as libbpf names them.
_SYSCALL_PREFIXES = {
    "x86_64": "x64", "i386": "ia32", "i486": "ia32", "i586": "ia32", "i686": "ia32",
    "s390x": "s390x", "s390": "s390", "aarch64": "arm64", "arm64": "arm64",
    "mips": "mips", "mips64": "mips", "riscv64": "riscv", "riscv32": "riscv",
    "ppc64le": "powerpc", "ppc64": "powerpc", "ppc": "powerpc", "loongarch64": "loongarch",
}


def _kernel_version_number(a: int, b: int, c: int) -> int:
    """KERNEL_VERSION(a, b, c) with the patch level clamped to 255, as libbpf computes it."""
    return (a << 16) + (b << 8) + min(c, 255)


@functools.cache
def kernel_version() -> int:
    """LINUX_KERNEL_VERSION as libbpf derives it: Ubuntu's /proc/version_signature
    ("Ubuntu 5.4.0-12.15-generic 5.4.8"), then a Debian version string in uname's
    version ("... Debian 6.1.76-1 ..."), then the release ("6.18.44-foo").  0 when
    none of them has three numbers."""
    try:
        with open("/proc/version_signature") as f:
            words = f.read().split()
        m = re.match(r"(\d+)\.(\d+)\.(\d+)", words[2]) if len(words) > 2 else None
        if m:
            return _kernel_version_number(*map(int, m.groups()))
    except OSError:
        pass
    uts = os.uname()
    m = re.search(r" Debian (\d+)\.(\d+)\.(\d+)", uts.version)
    if m:
        return _kernel_version_number(*map(int, m.groups()))
    m = re.match(r"(\d+)\.(\d+)\.(\d+)", uts.release)
    return _kernel_version_number(*map(int, m.groups())) if m else 0


def kernel_config_paths() -> list[str]:
    """Where the kernel config is read from, in libbpf's order."""
    return [f"/boot/config-{os.uname().release}", "/proc/config.gz"]


@functools.cache
def read_kernel_config() -> tuple[str, list[str]] | None:
    """(path, lines) of the first readable kernel config (gzipped or plain), or None."""
    for path in kernel_config_paths():
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            continue
        if data[:2] == b"\x1f\x8b":
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError):
                continue
        return path, data.decode("utf-8", "replace").splitlines()
    return None


def syscall_prefix() -> str | None:
    """``x64`` on x86-64: the architecture part of the kernel's syscall wrapper names."""
    return _SYSCALL_PREFIXES.get(platform.machine())


def _kallsyms_has(name: str) -> bool | None:
    """Whether /proc/kallsyms lists ``name`` (None when it cannot be read)."""
    try:
        with open("/proc/kallsyms", "rb") as f:
            want = name.encode()
            needle = b" " + want + b"\n"
            for line in f:
                # "ffffffff814f3290 T __x64_sys_bpf" (module symbols end in "\t[mod]")
                if line.endswith(needle) and line.split()[2] == want:
                    return True
        return False
    except OSError:
        return None


@functools.cache
def has_syscall_wrapper() -> bool:
    """LINUX_HAS_SYSCALL_WRAPPER: the kernel enters syscalls through ``__<arch>_sys_NAME``
    wrappers that take a ``struct pt_regs *`` (x86-64 since 4.17, arm64 since 4.19...).

    libbpf finds out by creating a kprobe on ``__<arch>_sys_bpf``; we look the symbol
    up in /proc/kallsyms, then in the kernel's BTF, which also works where kprobes
    are not available."""
    pfx = syscall_prefix()
    if pfx is None:
        return False
    name = f"__{pfx}_sys_bpf"
    found = _kallsyms_has(name)
    if found is not None:
        return found
    try:
        from ebpfpy.btf import Kind, vmlinux
        return bool(vmlinux().find_all(name, Kind.FUNC))
    except (OSError, ValueError):
        return False


def syscall_symbol(name: str) -> str:
    """The kernel function a ``ksyscall/NAME`` program is attached to, as libbpf picks it:
    ``__x64_sys_NAME`` with syscall wrappers, else ``__se_sys_NAME``."""
    if has_syscall_wrapper():
        return f"__{syscall_prefix()}_sys_{name}"
    return f"__se_sys_{name}"


@functools.cache
def has_bpf_cookie() -> bool:
    """LINUX_HAS_BPF_COOKIE: libbpf's probe, a kprobe program calling bpf_get_attach_cookie()."""
    import struct

    from ebpfpy.sys import bpf
    from ebpfpy.sys.consts import ProgType
    from ebpfpy.sys.errors import BPFError
    get_attach_cookie = 174
    insns = struct.pack("<BBhi", 0x85, 0, 0, get_attach_cookie) + struct.pack("<BBhi", 0x95, 0, 0, 0)
    try:
        bpf.prog_load(ProgType.KPROBE, insns, "GPL").close()
        return True
    except (BPFError, OSError):
        return False


def forget() -> None:
    """Drop the cached answers."""
    for fn in (kernel_version, read_kernel_config, has_syscall_wrapper, has_bpf_cookie):
        fn.cache_clear()
