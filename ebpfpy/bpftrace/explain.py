"""``-d``: what the compiler made of a script, instruction by instruction, beside the source.

For learners: each probe's program is printed in the disassembler's text,
and every run of instructions is headed by the source line that produced it.
"""
from __future__ import annotations

from ebpfpy.isa.disasm import format_insn


def explain(program, script, source: str) -> str:
    lines = source.split("\n")
    out = []
    for plan in script.probes:
        insns = plan.builder.build(maps={name: _Placeholder() for name in script.maps})
        spans = plan.builder.spans
        out.append(f"{plan.probe}: {len(insns)} instructions, {sum(i.size for i in insns)} slots\n")
        slot = 0
        last_line = None
        for insn in insns:
            span = spans[slot] if slot < len(spans) else None
            line = span[0] if span else None
            if line and line != last_line and 0 < line <= len(lines):
                out.append(f"    ; {lines[line - 1].strip()}   [line {line}]\n")
                last_line = line
            out.append(f"{slot:6}: {format_insn(insn)}\n")
            slot += insn.size
        out.append("\n")
    return "".join(out)


class _Placeholder:
    """Maps are not created for a dry run; their fds print as 0."""

    fd = 0
