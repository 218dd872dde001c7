"""Assemble the guest's initramfs: a cached base archive plus a small per-run archive.

The kernel unpacks concatenated cpio archives in order, so the part that
rarely changes (Python, libraries, busybox: ~90 MB) is built once and cached
under a hash of its inputs, while the checkout, the prebuilt test programs,
/init and the pytest arguments (a few MB) are written fresh on every run.
Stored uncompressed: under TCG, unpacking gzip made the boot 0.5-2 s slower,
lz4 was on par, and no compression needs no tool (tests/vm/README.md).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from . import rootfs
from .cpio import CpioWriter

FORMAT = "ebpfpy-vm-base-1"
INIT_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "init.sh")
GUEST_PREBUILT = "/vm/prebuilt"
# Checkout paths never worth shipping (caches, VCS data, the runner's own cache).
PROJECT_SKIP = (
    ".git/",
    "tests/vm/cache/",
    "tests/vm/build/",
    ".hypothesis/",
    ".pytest_cache/",
)


@dataclass(frozen=True)
class Base:
    path: str
    key: str
    built: bool
    size: int
    # Declared distributions the running interpreter lacks, so the guest does too (logged).
    missing: tuple[str, ...] = ()
    # Directories of shipped distributions the guest's `site` does not add: its PYTHONPATH needs them.
    path_dirs: tuple[str, ...] = ()


def interpreter_tag() -> str:
    """A short name for the running interpreter's environment (`sys.prefix`), so that a venv and
    the system Python keep a cached base each and alternating between them rebuilds neither."""
    return hashlib.sha256(os.path.realpath(sys.prefix).encode()).hexdigest()[:8]


def _stale_bases(cache_dir: str, tag: str) -> list[str]:
    """Older bases of this interpreter, and bases named before they carried a tag."""
    return glob.glob(os.path.join(cache_dir, f"base-{tag}-*.cpio")) + [
        path
        for path in glob.glob(os.path.join(cache_dir, "base-*.cpio"))
        if re.fullmatch(r"base-[0-9a-f]{16}\.cpio", os.path.basename(path))
    ]


def base_archive(cache_dir: str, extra_dists: tuple[str, ...] = ()) -> Base:
    """The cached base archive for the running interpreter (a venv's or the system's), building it
    when its inputs changed."""
    python = rootfs.python_environment(extra_dists)
    entries = rootfs.base_entries(python)
    key = rootfs.fingerprint(
        entries + [rootfs.Entry("data", "/format", payload=FORMAT.encode())]
    )[:16]
    tag = interpreter_tag()
    path = os.path.join(cache_dir, f"base-{tag}-{key}.cpio")
    details = {"missing": tuple(python.closure.missing), "path_dirs": tuple(python.path_dirs)}
    if os.path.exists(path):
        return Base(path, key, False, os.path.getsize(path), **details)
    os.makedirs(cache_dir, exist_ok=True)
    for stale in _stale_bases(cache_dir, tag):
        with contextlib.suppress(
            FileNotFoundError
        ):  # a concurrent run may have removed it
            os.unlink(stale)
    with tempfile.NamedTemporaryFile(
        dir=cache_dir, prefix="base-", suffix=".part", delete=False
    ) as stream:
        writer = CpioWriter(stream)
        rootfs.write(entries, writer)
        writer.close()
    os.replace(stream.name, path)
    return Base(path, key, True, os.path.getsize(path), **details)


def project_files(root: str) -> list[str]:
    """Checkout files relative to `root`: what git tracks or would track, plus built extensions and metadata."""
    result = subprocess.run(
        [
            "git",
            "-C",
            root,
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ],
        capture_output=True,
        check=False,
    )
    if result.returncode == 0:
        names = [name.decode() for name in result.stdout.split(b"\0") if name]
    else:
        names = [
            os.path.relpath(os.path.join(top, name), root)
            for top, dirs, files in os.walk(root)
            for name in files
            if "__pycache__" not in top
        ]
    extra = glob.glob("ebpfpy/**/*.so", root_dir=root, recursive=True)
    extra += glob.glob("*.egg-info/*", root_dir=root)
    names = [
        name
        for name in dict.fromkeys(names + extra)
        if not name.startswith(PROJECT_SKIP)
        and os.path.isfile(os.path.join(root, name))
    ]
    return sorted(names)


def project_entries(root: str) -> list[rootfs.Entry]:
    entries: list[rootfs.Entry] = []
    for name in project_files(root):
        entries += rootfs.python_file(
            os.path.join(root, name), rewritten=name.startswith("tests/")
        )
    return entries


def guest_env(
    root: str, release: str, extra: dict[str, str], path_dirs: tuple[str, ...] = ()
) -> dict[str, str]:
    """The guest's environment: `python3` is the running interpreter as started (a venv's
    `bin/python3` from a venv: `rootfs.guest_bin_dir`), the checkout comes first on PYTHONPATH,
    then `path_dirs` (distributions the guest's `site` would not find by itself)."""
    env = {
        "PATH": f"{rootfs.guest_bin_dir()}:/bin:/sbin",
        "HOME": "/root",
        "USER": "root",
        "LOGNAME": "root",
        "PYTHONUTF8": "1",
        "PYTHONPATH": os.pathsep.join((root, *path_dirs)),
        "EBPFPY_VM": release,
        "EBPFPY_VM_PROJECT": root,
        "EBPFPY_PREBUILT": GUEST_PREBUILT,
    }
    env.update(extra)
    return env


def run_archive(
    root: str,
    pytest_args: list[str],
    env: dict[str, str],
    prebuilt: dict[str, str],
    extra: dict[str, str] | None = None,
) -> bytes:
    """The per-run archive: /init, /vm/env, /vm/args, the prebuilt programs, `extra`
    ({guest path: host file}: host tools and data a test compares with) and the checkout."""
    stream = io.BytesIO()
    writer = CpioWriter(stream)
    with open(INIT_SCRIPT, "rb") as handle:
        writer.data("/init", handle.read(), mode=0o755)
    exports = "".join(
        f"export {name}={shlex.quote(value)}\n" for name, value in env.items()
    )
    writer.data("/vm/env", exports.encode())
    writer.data(
        "/vm/args", " ".join(shlex.quote(arg) for arg in pytest_args).encode() + b"\n"
    )
    writer.dir(GUEST_PREBUILT)
    entries = [
        rootfs.Entry("file", f"{GUEST_PREBUILT}/{name}", source=path)
        for name, path in sorted(prebuilt.items())
    ]
    entries += [
        rootfs.Entry("file", guest_path, source=path)
        for guest_path, path in sorted((extra or {}).items())
    ]
    entries += project_entries(root)
    rootfs.write(rootfs.dedupe(rootfs.with_libraries(entries)), writer)
    writer.close()
    return stream.getvalue()


def assemble(base: Base, run: bytes, out_path: str) -> None:
    """Concatenate base and per-run archive into the one file qemu's -initrd takes."""
    with open(out_path, "wb") as out, open(base.path, "rb") as src:
        shutil.copyfileobj(src, out, 1 << 22)
        out.write(run)
