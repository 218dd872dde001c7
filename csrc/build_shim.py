"""cffi out-of-line (API mode) build of ebpfpy's C shim: `ebpfpy.sys._shim`.

Kept to raw syscalls: attribute structs are packed in Python (ebpfpy/sys/),
so the shim does not depend on the build host's kernel headers.
"""
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

ffibuilder = FFI()
with open(os.path.join(HERE, "shim.h")) as header:
    ffibuilder.cdef(header.read())
ffibuilder.set_source(
    "ebpfpy.sys._shim",
    '#include "shim.h"',
    sources=[os.path.join("csrc", "shim.c")],
    include_dirs=[HERE],
    extra_compile_args=["-O2", "-fno-omit-frame-pointer"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
