"""Compile the suite's C test programs on the host: the guest has no compiler.

Convention (shared with tests/conftest.py): every `tests/progs/<name>.c` is a
standalone program; the runner builds it to `<name>` and packs it into the
guest's $EBPFPY_PREBUILT directory. A test needing one looks there first when
EBPFPY_PREBUILT is set and only compiles it itself otherwise.
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
