"""Reading a probe's context: saved registers of ``struct pt_regs`` on x86-64.

kprobe, uprobe and perf-event programs receive a pointer to the registers of the interrupted
code. Arguments of the probed function live in the registers the System V ABI assigns, so
``arg0`` is ``di`` and the return value is ``ax``. The offsets are the layout of the x86-64
``struct pt_regs`` (``arch/x86/include/uapi/asm/ptrace.h``), which the kernel keeps stable.
"""

from __future__ import annotations

from ebpfpy.isa.builder import R1, R6, Builder, BuildError, Reg

PT_REGS_X86_64: dict[str, int] = {
    "r15": 0, "r14": 8, "r13": 16, "r12": 24, "bp": 32, "bx": 40, "r11": 48, "r10": 56,
    "r9": 64, "r8": 72, "ax": 80, "cx": 88, "dx": 96, "si": 104, "di": 112, "orig_ax": 120,
    "ip": 128, "cs": 136, "flags": 144, "sp": 152, "ss": 160,
}
PT_REGS_SIZE = 168
# System V AMD64: integer arguments in order, and the return value.
ARG_REGS_X86_64 = ("di", "si", "dx", "cx", "r8", "r9")
RETVAL_REG_X86_64 = "ax"


# The uapi header spells some fields differently from the kernel's own struct.
_SPELLINGS = {"orig_rax": "orig_ax", "eflags": "flags", "rflags": "flags"}


def pt_regs_offset(name: str) -> int:
    """Offset of a saved register; ``rdi``/``eax``/``orig_rax``-style spellings work too."""
    key = _SPELLINGS.get(name.lower(), name.lower())
    if key not in PT_REGS_X86_64 and len(key) == 3 and key[0] in "re" and key[1:] in PT_REGS_X86_64:
        key = key[1:]
    try:
        return PT_REGS_X86_64[key]
    except KeyError:
        raise BuildError(f"unknown x86-64 register {name!r}; one of {', '.join(PT_REGS_X86_64)}") from None


def emit_save_ctx(b: Builder, into: Reg = R6) -> Reg:
    """Keep the context pointer (r1 at entry) in a callee-saved register across helper calls."""
    b.mov(into, R1)
    return into


def emit_reg_load(b: Builder, dst: Reg, ctx: Reg, name: str) -> None:
    """``dst = ctx->name`` (a saved register, 8 bytes)."""
    b.ldx(8, dst, ctx, pt_regs_offset(name))


def emit_arg_load(b: Builder, dst: Reg, ctx: Reg, n: int) -> None:
    """``dst = argN`` of the probed function (only the six register arguments)."""
    if not 0 <= n < len(ARG_REGS_X86_64):
        raise BuildError(f"arg{n}: only arg0..arg{len(ARG_REGS_X86_64) - 1} are passed in registers",
                         index=b.pc)
    emit_reg_load(b, dst, ctx, ARG_REGS_X86_64[n])


def emit_retval_load(b: Builder, dst: Reg, ctx: Reg) -> None:
    """``dst = retval`` in a return probe."""
    emit_reg_load(b, dst, ctx, RETVAL_REG_X86_64)
