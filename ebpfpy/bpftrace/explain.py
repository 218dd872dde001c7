"""``-d`` / ``-dd``: what the compiler made of a script, for someone learning eBPF.

bpftrace's ``-d`` prints its AST after each pass and then LLVM IR; we have no
IR, so after the typed AST we print each probe's program in bpftool's
syntax (``r0 = map_lookup_elem(...)`` reads better than opcode names),
headed by the source line that produced each run of instructions, with the
map behind each map load and the helper behind each call named in a
comment. ``-dd`` also loads every program (maps are created for it and
freed) and appends the verifier's log, so one can see what the kernel
checked; a rejection is shown with the failing instruction's source line.
"""
from __future__ import annotations

from ebpfpy.isa.disasm import format_insn

# A map placeholder's fd in a dry run: 0x7e00 + index, easy to spot and map back.
_PLACEHOLDER_BASE = 0x7E00


def explain(program, script, source: str, verify: bool = False, passes=None) -> str:
    """The whole ``-d`` report: AST after each pass, maps, each program, and with ``verify`` the verifier's log."""
    if passes:
        out = [f"\nAST after: {name}\n-------------------\n{text.rstrip()}\n\n" for name, text in passes]
    else:
        out = [_ast_section(program)]
    names = sorted(script.maps)
    placeholders = {name: _Placeholder(_PLACEHOLDER_BASE + i) for i, name in enumerate(names)}
    by_fd = {p.fd: name for name, p in placeholders.items()}
    lines = source.split("\n")
    if script.maps:
        out.append("Maps:\n")
        for name in names:
            plan = script.maps[name]
            kind = getattr(plan.map_type, "name", plan.map_type)
            out.append(f"  {name}: {str(kind).lower()}, key {plan.key_size} B, value {plan.value_size} B, "
                       f"at most {plan.max_entries} entries\n")
        out.append("\n")
    for plan in script.probes:
        insns = plan.builder.build(maps=placeholders)
        out.append(_program_section(plan, insns, lines, by_fd))
    if verify:
        out.append(_verifier_section(script))
    return "".join(out)


def _ast_section(program) -> str:
    try:
        from .printer import dump
    except ImportError:
        return ""
    try:
        text = dump(program)
    except Exception as err:  # the dump is a nicety; never let it stop -d
        return f"AST: (not available: {err})\n\n"
    return "\nAST after: Semantic\n-------------------\n" + text.rstrip("\n") + "\n\n"


def _comment(insn, by_fd: dict) -> str:
    """What a learner needs to read an instruction: which map, which helper."""
    op = insn.op
    if op == 0x18 and insn.src in (1, 2) and insn.imm in by_fd:  # ld_imm64 of a map fd / value
        return f"map {by_fd[insn.imm]}"
    if op == 0x95:
        return "return r0"
    return ""


def _program_section(plan, insns, lines: list, by_fd: dict) -> str:
    spans = plan.builder.spans
    out = [f"Program for {plan.probe} ({getattr(plan.prog_type, 'name', plan.prog_type)}): "
           f"{len(insns)} instructions, {sum(i.size for i in insns)} slots\n"]
    slot, last_line = 0, None
    for insn in insns:
        span = spans[slot] if slot < len(spans) else None
        line = span[0] if span else None
        if line and line != last_line and 0 < line <= len(lines):
            out.append(f"  ; line {line}: {lines[line - 1].strip()}\n")
            last_line = line
        text = _format(insn)
        if insn.op == 0x18 and insn.imm in by_fd:
            text = text.replace(f"map[id:{insn.imm}]", f"map[{by_fd[insn.imm]}]")
        comment = _comment(insn, by_fd)
        if comment.startswith("map ") and comment[4:] in text:
            comment = ""
        out.append(f"{slot:6}: {text}" + (f"   # {comment}" if comment else "") + "\n")
        slot += insn.size
    out.append("\n")
    return "".join(out)


def _format(insn) -> str:
    try:
        return format_insn(insn, "bpftool")
    except Exception:
        return format_insn(insn)


def _verifier_section(script) -> str:
    """``-dd``: load each program with the verifier's full log; maps are real, then closed."""
    import contextlib

    from ebpfpy.maps import Map
    from ebpfpy.progs import Program
    from ebpfpy.sys.errors import BPFError

    from .driver import failing_insn

    out = []
    with contextlib.ExitStack() as stack:
        maps = {}
        for plan in script.maps.values():
            m = Map.create(plan.map_type, plan.key_size, plan.value_size, plan.max_entries)
            stack.callback(m.close)
            maps[plan.name] = m
        for plan in script.probes:
            insns = plan.builder.build(maps=maps)
            out.append(f"Verifier log for {plan.probe}:\n")
            try:
                prog = Program.load(plan.prog_type, insns, expected_attach_type=plan.expected_attach_type,
                                    log_level=2 | 4, log_size=1 << 22)
                out.append((prog.verifier_log or "").strip("\0\n") + "\n\n")
                prog.close()
            except BPFError as err:
                log = (err.log or "").strip("\0\n")
                out.append(log + "\n")
                bad = failing_insn(log)
                spans = plan.builder.spans
                if bad is not None and bad < len(spans) and spans[bad]:
                    out.append(f"REJECTED at instruction {bad}, generated for line {spans[bad][0]}\n")
                out.append(f"REJECTED: {err}\n\n")
    return "".join(out)


class _Placeholder:
    """Maps are not created for a dry run; each gets a distinct fake fd so its loads can be named."""

    def __init__(self, fd: int):
        self.fd = fd

    def fileno(self) -> int:
        return self.fd
