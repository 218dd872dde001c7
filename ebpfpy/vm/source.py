"""Where instructions came from: source lines for assembly text, Builder spans and BTF line info."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ebpfpy.isa.errors import ISAError
from ebpfpy.isa.insn import Insn


@dataclass(frozen=True)
class SourceLine:
    """Where an instruction came from: a line of an assembly file, of a Builder's source, or
    of a C file (BTF line info)."""

    file: str
    line: int
    col: int = 0
    text: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.file else f"line {self.line}"
        return f"{where}: {self.text}" if self.text else where



def span_lines(spans: Sequence, filename: str = "", source: str | None = None) -> dict[int, SourceLine]:
    """Source lines per slot from a Builder's spans ``(line, first column, last column)``."""
    text = source.splitlines() if source else []
    out = {}
    for slot, span in enumerate(spans):
        if span:
            line, col = span[0], span[1]
            shown = text[line - 1].strip() if 0 < line <= len(text) else ""
            out[slot] = SourceLine(filename, line, col, shown)
    return out


def asm_lines(text: str, insns: list[Insn], filename: str = "") -> dict[int, SourceLine]:
    """The assembly line of each slot: each line is assembled alone, a line that makes an
    instruction takes its slots (a line that cannot stand alone refers to a label: a jump
    or a call, one slot). Empty when the count disagrees with the whole program's."""
    from ebpfpy.isa.asm import assemble

    out: dict[int, SourceLine] = {}
    slot = 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            alone = assemble(raw)
        except ISAError:
            alone = [None]
        if not alone:
            continue
        out[slot] = SourceLine(filename, number, 0, raw.strip())
        slot += sum(i.size if i is not None else 1 for i in alone)
    total = sum(i.size for i in insns)
    return out if slot == total else {}
