"""Reading kernel or user memory into a stack buffer with the right ``probe_read`` variant.

Tracing programs may not dereference arbitrary pointers; they copy through a helper. Which
helper depends on the address space (kernel or user) and on whether the copy stops at a NUL
byte, so the choice is a table lookup rather than a decision every caller repeats.
"""

from __future__ import annotations

from ebpfpy.codegen.bounds import emit_clamp
from ebpfpy.codegen.calls import emit_helper_call
from ebpfpy.codegen.stack import StackSlot
from ebpfpy.isa.builder import R0, Builder, BuildError, Reg

PROBE_READ_HELPERS = {
    ("kernel", False): "probe_read_kernel",
    ("kernel", True): "probe_read_kernel_str",
    ("user", False): "probe_read_user",
    ("user", True): "probe_read_user_str",
    # the pre-5.5 helpers that guess the address space (what bpftrace 0.17 uses for kprobes)
    ("any", False): "probe_read",
    ("any", True): "probe_read_str",
}


def probe_read_helper(space: str, string: bool = False) -> str:
    try:
        return PROBE_READ_HELPERS[(space, string)]
    except KeyError:
        raise BuildError(f"address space must be 'kernel', 'user' or 'any', not {space!r}") from None


def emit_probe_read(b: Builder, dst: StackSlot, src: Reg | int, size: int | Reg | None = None,
                    space: str = "kernel", string: bool = False) -> Reg:
    """Copy ``size`` bytes (default: the whole slot) from address ``src`` into ``dst``.

    A register ``size`` is clamped to the slot first (in place), so the verifier sees it bounded.
    r0 receives the helper's result (bytes copied, NUL included, for the string variants; 0 or a
    negative errno otherwise).
    """
    name = probe_read_helper(space, string)
    if isinstance(size, Reg):
        emit_clamp(b, size, dst.size)
    emit_helper_call(b, name, dst, size, src)
    return R0
