"""print(*ptr) (today's language): a struct's bytes decoded whole by its BTF layout, without the kernel's help."""
from __future__ import annotations

import struct

import pytest

from ebpfpy.bpftrace.emit.fields import struct_layout
from ebpfpy.bpftrace.output.jsonfmt import value_json
from ebpfpy.bpftrace.output.text import format_value
from ebpfpy.bpftrace.shapes import Shape, decode


@pytest.fixture(scope="module")
def spec():
    from ebpfpy.bpftrace.emit.world import SystemWorld

    try:
        return SystemWorld().btf()
    except OSError as err:
        pytest.skip(f"no vmlinux BTF: {err}")


def _decode(spec, name: str, raw: bytes):
    tid = spec.find_struct(name)
    layout = struct_layout(spec, tid)
    return decode(Shape("struct", (len(raw) + 7) // 8 * 8, False, extra=layout), raw, None)


def test_timespec_prints_as_bpftrace_0_26(spec):
    value = _decode(spec, "__kernel_timespec", struct.pack("<qq", 0, 250000000))
    assert format_value(value) == "{ .tv_sec = 0, .tv_nsec = 250000000 }"
    assert value_json(value) == '{"tv_sec": 0, "tv_nsec": 250000000}'


def test_signed_members_and_char_arrays(spec):
    # struct old_utsname-like: use a struct with a char array and ints: new_utsname is 6 char[65]
    raw = b"".join(s.ljust(65, b"\0") for s in (b"Linux", b"host", b"6.18", b"#1", b"x86_64", b"(none)"))
    value = _decode(spec, "new_utsname", raw)
    assert value.names[:2] == ("sysname", "nodename") and value[0] == "Linux" and value[4] == "x86_64"
    neg = _decode(spec, "__kernel_timespec", struct.pack("<qq", -1, 5))
    assert tuple(neg) == (-1, 5)
