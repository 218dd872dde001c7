"""``-d`` / ``-dd``: what the compiler made of a script, for someone learning eBPF.

bpftrace's ``-d`` prints its AST after each pass and then LLVM IR; we have no
IR, so after the typed AST we print each probe's program in bpftool's
syntax (``r0 = map_lookup_elem(...)`` reads better than opcode names),
headed by the source line that produced each run of instructions and, under
it, the statement (or predicate) with its span, ``;   @[comm] = count();
(1:23-41)``, whenever the statement changes (docs/pybpftrace.md, "What -d
prints"); map loads name their map (``map[@x]``) and calls their helper.
``-dd`` also loads every program (maps are created for it and freed) and
appends the verifier's log, so one can see what the kernel checked; a
rejection is shown with the failing instruction's source line and statement.
"""
from __future__ import annotations

import bisect

from ebpfpy.isa.disasm import Names, format_insn

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
    statements = _statements(program, source)
    for plan in script.probes:
        insns = plan.builder.build(maps=placeholders)
        out.append(_program_section(plan, insns, lines, by_fd, statements))
    if verify:
        out.append(_verifier_section(script, statements))
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


def _program_section(plan, insns, lines: list, by_fd: dict, statements: dict | None = None) -> str:
    spans = plan.builder.spans
    names = Names(maps=by_fd)
    out = [f"Program for {plan.probe} ({getattr(plan.prog_type, 'name', plan.prog_type)}): "
           f"{len(insns)} instructions, {sum(i.size for i in insns)} slots\n"]
    slot, last_line, last_span = 0, None, None
    for insn in insns:
        span = spans[slot] if slot < len(spans) else None
        line = span[0] if span else None
        if span and tuple(span) != last_span and 0 < line <= len(lines):
            out.append(_headers(span, line != last_line, lines, statements or {}))
            last_line, last_span = line, tuple(span)
        elif span is None and last_span is not None:
            out.append("  ; (no statement: the probe's own code)\n")
            last_span = None
        text = _format(insn, names)
        comment = _comment(insn, by_fd)
        if comment.startswith("map ") and comment[4:] in text:
            comment = ""
        out.append(f"{slot:6}: {text}" + (f"   # {comment}" if comment else "") + "\n")
        slot += insn.size
    out.append("\n")
    return "".join(out)


def _format(insn, names: Names | None = None) -> str:
    try:
        return format_insn(insn, "bpftool", names=names)
    except Exception:
        return format_insn(insn)


# -- statement headers ------------------------------------------------------------------------
#
# The builder tags each instruction with the span of the statement (or predicate) it was
# generated for: the location bpftrace reports errors at, which for an assignment is its `=`
# and for an `if` the keyword. A header shows the whole statement instead, found in the AST:
# the statement's own span joined with its expressions' (not its nested blocks'), widened to
# close its brackets and to take its `;`.

_OPEN, _CLOSE = "([", ")]"


def _headers(span, new_line: bool, lines: list, statements: dict) -> str:
    """The headers above the instructions of ``span``: the line when it changed, and the
    statement with its span unless it is all of its line (then the line header ends with it)."""
    line = span[0]
    source = lines[line - 1].strip()
    found = statements.get(tuple(span[:3]))
    if found is None:
        text, where = _slice(lines, span), _where(span[0], span[1], span[0], span[2])
    else:
        text, where = found
    out = ""
    if text == source:
        return f"  ; line {line}: {source}   ({where})\n"
    if new_line:
        out += f"  ; line {line}: {source}\n"
    if text:
        out += f"  ;   {text}   ({where})\n"
    return out


def _where(line: int, col: int, end_line: int, end_col: int) -> str:
    """``1:23-41`` (columns as in error messages: the first, and one past the last), or
    ``3:5-4:20`` for text over several lines."""
    return f"{line}:{col}-{end_col}" if end_line == line else f"{line}:{col}-{end_line}:{end_col}"


def _slice(lines: list, span) -> str:
    text = lines[span[0] - 1][span[1] - 1:span[2] - 1] if 0 < span[0] <= len(lines) else ""
    return " ".join(text.split())


def _statements(program, source: str) -> dict:
    """{instruction span (line, col, end col): (statement text, its span as text)} for every
    statement and predicate of the program; {} when there is no AST (never an error: the
    headers are a help, and fall back to the instruction span's own text)."""
    table: dict = {}
    try:
        starts = [0]
        for text in source.split("\n"):
            starts.append(starts[-1] + len(text) + 1)
        for probe in getattr(program, "probes", ()):
            pred, pred_span = getattr(probe, "pred", None), getattr(probe, "pred_span", None)
            if pred is not None and pred.span.line and pred_span and pred_span.line:
                table.setdefault(tuple(pred.span[:3]), _text(source, starts, _bounds(pred_span, starts)))
            _walk_statements(probe.body, source, starts, table)
    except Exception:  # a header is a nicety: never let it stop -d
        return table
    return table


def _walk_statements(stmts, source: str, starts: list, table: dict) -> None:
    from .ast import Stmt

    for stmt in stmts or ():
        nested = []
        begin, end = _bounds(stmt.span, starts) if stmt.span.line else (None, None)
        todo = list(stmt.children())
        while todo:
            node = todo.pop()
            if isinstance(node, Stmt):
                nested.append(node)
                continue
            if node.span.line:
                b, e = _bounds(node.span, starts)
                begin, end = (b, e) if begin is None else (min(begin, b), max(end, e))
            todo.extend(node.children())
        if begin is not None and stmt.span.line:
            table.setdefault(tuple(stmt.span[:3]), _text(source, starts, (begin, end), statement=True))
        # Blocks (then/else/loop bodies) are statements of their own, in source order.
        _walk_statements(sorted(nested, key=lambda n: (n.span.line, n.span.col_start)), source, starts, table)


def _bounds(span, starts: list) -> tuple[int, int]:
    """A span as offsets into the source: [begin, end)."""
    end_line = span.end_line or span.line
    return starts[span.line - 1] + span.col_start - 1, starts[end_line - 1] + span.col_end - 1


def _text(source: str, starts: list, bounds: tuple[int, int], statement: bool = False) -> tuple[str, str]:
    """(text, span) of source[begin:end], a statement's widened to read whole (see above)."""
    begin, end = bounds
    if statement:
        while begin < end and source[begin] in " \t\n{};/":  # bpftrace's spans may start early
            begin += 1
        depth = _depth(source[begin:end])
        while depth > 0 and end < len(source) and source[end] not in ";{}":
            depth += (source[end] in _OPEN) - (source[end] in _CLOSE)
            end += 1
        after = end
        while after < len(source) and source[after] in " \t":
            after += 1
        if after < len(source) and source[after] == ";":
            end = after + 1
    text = " ".join(source[begin:end].split())
    line = bisect.bisect_right(starts, begin)
    end_line = bisect.bisect_right(starts, max(end - 1, begin))
    return text, _where(line, begin - starts[line - 1] + 1, end_line, end - starts[end_line - 1] + 1)


def _depth(text: str) -> int:
    """Open brackets less closed ones, outside string literals."""
    depth, quoted, escaped = 0, False, False
    for ch in text:
        if quoted:
            quoted = escaped or ch != '"'
            escaped = not escaped and ch == "\\"
        elif ch == '"':
            quoted = True
        else:
            depth += (ch in _OPEN) - (ch in _CLOSE)
    return depth


def _verifier_section(script, statements: dict | None = None) -> str:
    """``-dd``: load each program with the verifier's full log; maps are real, then closed."""
    import contextlib

    from ebpfpy.codegen.funcinfo import func_info_load_args
    from ebpfpy.maps import Map
    from ebpfpy.progs import Program
    from ebpfpy.sys.errors import BPFError, failing_insn

    out = []
    statements = statements or {}
    with contextlib.ExitStack() as stack:
        maps = {}
        for plan in script.maps.values():
            m = Map.create(plan.map_type, plan.key_size, plan.value_size, plan.max_entries)
            stack.callback(m.close)
            maps[plan.name] = m
        for plan in script.probes:
            insns = plan.builder.build(maps=maps)
            out.append(f"Verifier log for {plan.probe}:\n")
            functions = func_info_load_args(plan.builder.subprograms)  # for loops' callbacks
            try:
                prog = Program.load(plan.prog_type, insns, expected_attach_type=plan.expected_attach_type,
                                    log_level=2 | 4, log_size=1 << 22, **functions)
                out.append((prog.verifier_log or "").strip("\0\n") + "\n\n")
                prog.close()
            except BPFError as err:
                log = (err.log or "").strip("\0\n")
                out.append(log + "\n")
                bad = failing_insn(log)
                spans = plan.builder.spans
                if bad is not None and bad < len(spans) and spans[bad]:
                    found = statements.get(tuple(spans[bad][:3]))
                    what = f": {found[0]}   ({found[1]})" if found else ""
                    out.append(f"REJECTED at instruction {bad}, generated for line {spans[bad][0]}{what}\n")
                out.append(f"REJECTED: {err}\n\n")
            finally:
                if functions:
                    functions["prog_btf_fd"].close()
    return "".join(out)


class _Placeholder:
    """Maps are not created for a dry run; each gets a distinct fake fd so its loads can be named."""

    def __init__(self, fd: int):
        self.fd = fd

    def fileno(self) -> int:
        return self.fd
