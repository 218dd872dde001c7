"""Generates ``ebpfpy/sys/_libc_ffi.py``: the C declarations ebpfpy's syscall layer calls libc with.

ebpfpy calls libc through cffi's ABI mode, so installing it needs no compiler. This script runs
cffi's "out-of-line ABI" generator over ``CDEF`` below; the generated module holds the declarations
pre-parsed, so importing it needs only cffi's ``_cffi_backend`` (no pycparser, no parsing at start-up).
The generated file is committed; after editing ``CDEF`` run ``python3 csrc/build_shim.py``
(``tests/unit/test_libc_shim.py`` checks that the two agree).

Kept to raw calls: attribute structs are packed in Python (ebpfpy/sys/), so nothing here depends on
the build host's kernel headers.
"""
from __future__ import annotations

import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = "ebpfpy.sys._libc_ffi"
TARGET = os.path.join(ROOT, *MODULE.split(".")) + ".py"
MAX_LINE = 120  # the project's line length (pyproject.toml, [tool.ruff])

# libc's own prototypes, and the fixed-argument types ebpfpy calls them through where the
# platform's calling convention passes variadic integer and pointer arguments like fixed ones
# (ebpfpy/sys/_libc.py says which): a fixed-argument call through libffi is several times cheaper
# than cffi's variadic call, which needs a cast per argument and a new call interface per call.
CDEF = """
long syscall(long number, ...);
int ioctl(int fd, unsigned long request, ...);
int sched_getcpu(void);
int mount(const char *source, const char *target, const char *filesystemtype, unsigned long mountflags,
          const void *data);

typedef long (*ebpfpy_bpf_fn)(long number, long cmd, void *attr, unsigned long size);
typedef long (*ebpfpy_perf_event_open_fn)(long number, void *attr, long pid, long cpu, long group_fd,
                                          unsigned long flags);
typedef int (*ebpfpy_ioctl_fn)(int fd, unsigned long request, unsigned long arg);
"""

# What the declarations above define, for the check that the committed module matches them.
FUNCTIONS = ("syscall", "ioctl", "sched_getcpu", "mount")
TYPEDEFS = ("ebpfpy_bpf_fn", "ebpfpy_perf_event_open_fn", "ebpfpy_ioctl_fn")


def builder():
    from cffi import FFI

    ffibuilder = FFI()
    ffibuilder.cdef(CDEF)
    ffibuilder.set_source(MODULE, None)  # None: ABI mode, no C source to compile
    return ffibuilder


def source() -> str:
    """The text of the generated module (cffi's output, long lines marked for the linter)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "_libc_ffi.py")
        builder().emit_python_code(path)
        with open(path) as f:
            lines = f.read().splitlines()
    lines = [line + "  # noqa: E501" if len(line) > MAX_LINE else line for line in lines]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    text = source()
    if argv[1:] == ["--check"]:
        with open(TARGET) as f:
            same = f.read() == text
        print(f"{TARGET}: {'up to date' if same else 'differs from CDEF: run python3 csrc/build_shim.py'}")
        return 0 if same else 1
    with open(TARGET, "w") as f:
        f.write(text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
