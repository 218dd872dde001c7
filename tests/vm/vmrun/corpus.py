"""The libbpf-tools corpus for the guest: BPF objects cut out of Debian's executables, plus bpftool.

`tests/kernel/test_elf_corpus.py` loads every BPF object embedded in the
`libbpf-tools` executables with ebpfpy and with `bpftool prog loadall` (libbpf)
and compares the results. The guest has neither dpkg nor the package nor
bpftool, and the interesting kernels for that comparison are the guests' (they
have kprobes and BPF trampolines; the host has neither). So the runner does the
host half here: it cuts the objects out once per package version into
`cache/libbpf-tools/<version>/`, and ships them as `/vm/libbpf-tools/*.bpf.o`
(`EBPFPY_LIBBPF_TOOLS`) with bpftool as `/vm/tools/bpftool` (`EBPFPY_BPFTOOL`;
its shared libraries follow through `ldd`, and Debian's bpftool links libbpf
statically). bpftool stays off the guest's `PATH` on purpose: the tests that
find it there would also start comparing in the guest, which nobody has
budgeted for.

The cutting itself lives here (not in the test) so that the host test and the
runner name the objects alike; the test imports this module.
"""

from __future__ import annotations

import glob
import os
import shutil
import struct
import subprocess

PACKAGE = "libbpf-tools"
EM_BPF = 247
GUEST_OBJECTS = "/vm/libbpf-tools"
GUEST_BPFTOOL = "/vm/tools/bpftool"
# What the guest's environment names them by (read by tests/kernel/test_elf_corpus.py).
OBJECTS_ENV = "EBPFPY_LIBBPF_TOOLS"
BPFTOOL_ENV = "EBPFPY_BPFTOOL"
SUFFIX = ".bpf.o"


def package_files(package: str = PACKAGE) -> list[str]:
    """Regular files (not symlinks) the package installed; [] when it is not installed."""
    try:
        out = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    return [p for p in out.splitlines() if p.startswith("/") and os.path.isfile(p) and not os.path.islink(p)]


def package_version(package: str = PACKAGE) -> str | None:
    """The installed version (`dpkg-query`), None when the package is not installed."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Status} ${Version}", package],
                             capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return None
    return out[-1] if out[:3] == ["install", "ok", "installed"] and len(out) == 4 else None


def embedded_bpf_objects(data: bytes) -> list[bytes]:
    """Every 64-bit little-endian ELF image with e_machine EM_BPF inside ``data``; an image
    ends with its section header table (e_shoff + e_shnum * e_shentsize), which is where
    libbpf's skeletons put nothing after it."""
    out = []
    i = data.find(b"\x7fELF")
    while i != -1:
        if i + 64 <= len(data) and data[i + 4] == 2 and data[i + 5] == 1:  # ELFCLASS64, ELFDATA2LSB
            (machine,) = struct.unpack_from("<H", data, i + 18)
            (shoff,) = struct.unpack_from("<Q", data, i + 0x28)
            shentsize, shnum = struct.unpack_from("<HH", data, i + 0x3A)
            end = i + shoff + shnum * shentsize
            if machine == EM_BPF and shnum and end <= len(data):
                out.append(data[i:end])
                i = data.find(b"\x7fELF", end)
                continue
        i = data.find(b"\x7fELF", i + 1)
    return out


def extract(files: list[str], out_dir: str) -> dict[str, str]:
    """Write each file's embedded objects to `out_dir`: {name: path}, the name being the
    executable's (`-K` added for the K-th further image in one file), sorted by name."""
    os.makedirs(out_dir, exist_ok=True)
    objs = {}
    for path in sorted(files):
        with open(path, "rb") as f:
            images = embedded_bpf_objects(f.read())
        for k, image in enumerate(images):
            name = os.path.basename(path) + (f"-{k}" if k else "")
            target = os.path.join(out_dir, name + SUFFIX)
            with open(target + ".part", "wb") as f:
                f.write(image)
            os.replace(target + ".part", target)
            objs[name] = target
    return dict(sorted(objs.items()))


def objects_in(directory: str) -> dict[str, str]:
    """{name: path} of the `*.bpf.o` already in `directory` (the guest's side)."""
    paths = sorted(glob.glob(os.path.join(glob.escape(directory), "*" + SUFFIX)))
    return {os.path.basename(p)[: -len(SUFFIX)]: p for p in paths}


def cached_objects(cache_dir: str) -> dict[str, str]:
    """The host's objects, cut once per installed package version into
    `cache_dir/libbpf-tools/<version>/` (a `complete` stamp marks a finished cut);
    {} when the package is not installed."""
    version = package_version()
    if version is None:
        return {}
    root = os.path.join(cache_dir, PACKAGE)
    out_dir = os.path.join(root, version.replace("/", "_"))
    if os.path.exists(os.path.join(out_dir, "complete")):
        return objects_in(out_dir)
    shutil.rmtree(root, ignore_errors=True)  # older versions' cuts
    objs = extract(package_files(), out_dir)
    with open(os.path.join(out_dir, "complete"), "w") as f:
        f.write(f"{PACKAGE} {version}: {len(objs)} objects\n")
    return objs


def guest_files(cache_dir: str) -> tuple[dict[str, str], dict[str, str]]:
    """({guest path: host path} to ship, {variable: guest path} for the guest's environment).

    Empty where the host lacks the package or bpftool: the test then skips in the guest
    as it does on a host without them."""
    bpftool = shutil.which("bpftool") or next(
        (p for p in ("/usr/sbin/bpftool", "/sbin/bpftool") if os.access(p, os.X_OK)), None)
    objs = cached_objects(cache_dir)
    if not objs or bpftool is None:
        return {}, {}
    files = {f"{GUEST_OBJECTS}/{name}{SUFFIX}": path for name, path in objs.items()}
    files[GUEST_BPFTOOL] = os.path.realpath(bpftool)
    return files, {OBJECTS_ENV: GUEST_OBJECTS, BPFTOOL_ENV: GUEST_BPFTOOL}
