"""Compile the suite's C test programs on the host: the guest has no compiler.

Convention (shared with tests/conftest.py): every `tests/progs/<name>.c` is a
standalone program; the runner builds it to `<name>` and packs it into the
guest's $EBPFPY_PREBUILT directory. A test needing one looks there first when
EBPFPY_PREBUILT is set and only compiles it itself otherwise.

BPF objects: a `tests/bpf_objects/<name>.bpf.c` whose text holds the line marker
`ebpfpy-vm: prebuild` is built with clang-19 (`-O2 -g -target bpf`, against a
vmlinux.h of the host's kernel: CO-RE adapts it to the guest's) into
`<name>.bpf.o` (`tests/helpers.py`'s `bpf_object` looks there first).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys

PROGS_DIR = os.path.join("tests", "progs")
CFLAGS = ("-g", "-fno-omit-frame-pointer")
# Binary-name suffix -> optimisation flags: `<name>` is built with -O2, `<name>.O0` with -O0
# (USDT and uprobe tests want unoptimised code where arguments stay in memory).
VARIANTS = {"": ("-O2",), ".O0": ("-O0",)}


def compiler() -> str | None:
    for candidate in (os.environ.get("CC"), "cc", "gcc", "clang-19", "clang"):
        if candidate and shutil.which(candidate):
            return candidate
    return None


def build_all(project_root: str, out_dir: str) -> dict[str, str]:
    """{binary name: host path} for every program and variant that compiles.

    Rebuilds only binaries older than their source; cached in `out_dir`."""
    sources = sorted(glob.glob(os.path.join(project_root, PROGS_DIR, "*.c")))
    if not sources:
        return {}
    cc = compiler()
    if cc is None:
        print(
            "[vm] warning: no C compiler; tests/progs/*.c not prebuilt", file=sys.stderr
        )
        return {}
    os.makedirs(out_dir, exist_ok=True)
    built: dict[str, str] = {}
    for source in sources:
        stem = os.path.splitext(os.path.basename(source))[0]
        for suffix, flags in VARIANTS.items():
            binary = os.path.join(out_dir, stem + suffix)
            if _build(cc, source, binary, flags):
                built[stem + suffix] = binary
    return built


BPF_DIR = os.path.join("tests", "bpf_objects")
BPF_MARKER = "ebpfpy-vm: prebuild"
BPF_CLANG = "clang-19"


def _vmlinux_h(project_root: str, out_dir: str) -> str | None:
    """The host kernel's vmlinux.h (bpftool's dump, else ebpfpy's writer), made once."""
    path = os.path.join(out_dir, "vmlinux.h")
    if os.path.exists(path):
        return path
    if shutil.which("bpftool"):
        command = ["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"]
    else:
        command = [sys.executable, "-c", "from ebpfpy.btf import vmlinux; "
                   "from ebpfpy.btf.cheader import format_header; print(format_header(vmlinux()))"]
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=project_root)
    if result.returncode != 0:
        print(f"[vm] warning: no vmlinux.h for BPF objects: {result.stderr.strip()}", file=sys.stderr)
        return None
    with open(path + ".tmp", "w") as f:
        f.write(result.stdout)
    os.replace(path + ".tmp", path)
    return path


def build_bpf_objects(project_root: str, out_dir: str) -> dict[str, str]:
    """{"<name>.bpf.o": host path} for every marked BPF object source that compiles."""
    sources = []
    for source in sorted(glob.glob(os.path.join(project_root, BPF_DIR, "*.bpf.c"))):
        with open(source) as f:
            if BPF_MARKER in f.read():
                sources.append(source)
    if not sources:
        return {}
    if not shutil.which(BPF_CLANG):
        print(f"[vm] warning: no {BPF_CLANG}; marked tests/bpf_objects not prebuilt", file=sys.stderr)
        return {}
    os.makedirs(out_dir, exist_ok=True)
    header = _vmlinux_h(project_root, out_dir)
    if header is None:
        return {}
    built: dict[str, str] = {}
    for source in sources:
        name = os.path.basename(source)[: -len(".c")] + ".o"
        obj = os.path.join(out_dir, name)
        if os.path.exists(obj) and os.path.getmtime(obj) >= os.path.getmtime(source):
            built[name] = obj
            continue
        command = [BPF_CLANG, "-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86", "-I", out_dir,
                   "-I", os.path.dirname(source), "-c", source, "-o", obj]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            print(f"[vm] warning: {' '.join(command)} failed:\n{result.stderr}", file=sys.stderr)
            continue
        built[name] = obj
    return built


def _build(cc: str, source: str, binary: str, flags: tuple[str, ...]) -> bool:
    if os.path.exists(binary) and os.path.getmtime(binary) >= os.path.getmtime(source):
        return True
    command = [cc, *CFLAGS, *flags, "-o", binary, source]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        print(
            f"[vm] warning: {' '.join(command)} failed:\n{result.stderr}",
            file=sys.stderr,
        )
        return False
    return True
