"""AST back to text: ``to_source`` (re-parseable bpftrace) and ``dump`` (``-d``).

``to_source`` parenthesises every compound subexpression so the output parses
back to the same AST without the printer having to know precedences; the
round-trip property test pins that.  ``dump`` follows the layout of bpftrace
0.17's ``-d`` output (one node per line, one space of indent per level,
``:: type[...]`` on expressions once semantic analysis has run).
"""
from __future__ import annotations

from dataclasses import fields
from functools import singledispatch

from . import ast

_ESC = {"\n": "\\n", "\t": "\\t", "\r": "\\r", '"': '\\"', "\\": "\\\\"}


def quote(s: str) -> str:
    out = []
    for ch in s:
        if ch in _ESC:
            out.append(_ESC[ch])
        elif ord(ch) < 32 or ord(ch) > 126:
            out.append(f"\\{ord(ch) & 0xFF:03o}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


# -- source ------------------------------------------------------------------

@singledispatch
def expr_source(node: ast.Expr) -> str:
    raise TypeError(f"cannot print {type(node).__name__}")


def _paren(node: ast.Expr) -> str:
    text = expr_source(node)
    simple = (ast.Integer, ast.String, ast.Builtin, ast.Identifier, ast.Variable, ast.Map,
              ast.PositionalParam, ast.ParamCount, ast.Call, ast.Tuple, ast.Record, ast.StackMode,
              ast.Sizeof, ast.Boolean, ast.Offsetof)
    return text if isinstance(node, simple) else f"({text})"


@expr_source.register
def _(node: ast.Integer) -> str:
    return str(node.value)


@expr_source.register
def _(node: ast.String) -> str:
    return quote(node.value)


@expr_source.register(ast.Builtin)
@expr_source.register(ast.Identifier)
@expr_source.register(ast.StackMode)
@expr_source.register(ast.Variable)
def _(node) -> str:
    return node.name


@expr_source.register
def _(node: ast.PositionalParam) -> str:
    return f"${node.index}"


@expr_source.register
def _(node: ast.ParamCount) -> str:
    return "$#"


@expr_source.register
def _(node: ast.Map) -> str:
    if node.indexed:
        return f"{node.name}[{', '.join(expr_source(k) for k in node.keys)}]"
    return node.name


@expr_source.register
def _(node: ast.Call) -> str:
    return f"{node.name}({', '.join(expr_source(a) for a in node.args)})"


@expr_source.register
def _(node: ast.Sizeof) -> str:
    inner = node.type_name if node.type_name is not None else expr_source(node.expr)
    return f"sizeof({inner})"


@expr_source.register
def _(node: ast.Boolean) -> str:
    return "true" if node.value else "false"


@expr_source.register
def _(node: ast.Offsetof) -> str:
    return f"offsetof({node.type_name}, {'.'.join(node.fields)})"


@expr_source.register
def _(node: ast.Range) -> str:
    return f"{_paren(node.start)}..{_paren(node.end)}"


@expr_source.register
def _(node: ast.Binop) -> str:
    return f"{_paren(node.left)} {node.op} {_paren(node.right)}"


@expr_source.register
def _(node: ast.Unop) -> str:
    inner = _paren(node.operand)
    if node.postfix:
        return f"{inner}{node.op}"
    if node.op == "-" and isinstance(node.operand, ast.Integer):
        return f"-({inner})"  # "-1" would parse as one negative literal
    # a space keeps "- -x" from lexing as "--"
    return f"{node.op} {inner}" if node.op in "-*" else f"{node.op}{inner}"


@expr_source.register
def _(node: ast.Ternary) -> str:
    return f"{_paren(node.cond)} ? {_paren(node.left)} : {_paren(node.right)}"


@expr_source.register
def _(node: ast.BlockExpr) -> str:
    return "{ " + "".join(stmt_source(s, 0).strip() + " " for s in node.stmts) + expr_source(node.expr) + " }"


@expr_source.register
def _(node: ast.Elvis) -> str:
    return f"{_paren(node.left)} ?: {_paren(node.right)}"


@expr_source.register
def _(node: ast.FieldAccess) -> str:
    return f"{_paren(node.expr)}{'->' if node.arrow else '.'}{node.field}"


@expr_source.register
def _(node: ast.TupleAccess) -> str:
    return f"{_paren(node.expr)}.{node.index}"


@expr_source.register
def _(node: ast.ArrayAccess) -> str:
    inner = _paren(node.expr)
    if isinstance(node.expr, ast.Map) and not node.expr.indexed:
        inner = f"({inner})"  # "@m[i]" would be a keyed map
    return f"{inner}[{expr_source(node.index)}]"


@expr_source.register
def _(node: ast.Cast) -> str:
    stars = " " + "*" * node.pointer if node.pointer else ""
    return f"({node.type_name}{stars}){_paren(node.expr)}"


@expr_source.register
def _(node: ast.Record) -> str:
    return "(" + ", ".join(f"{n} = {expr_source(e)}" for n, e in zip(node.names, node.elems)) + ")"


@expr_source.register
def _(node: ast.Tuple) -> str:
    if len(node.elems) == 1:
        return f"({expr_source(node.elems[0])},)"
    return f"({', '.join(expr_source(e) for e in node.elems)})"


def _block(stmts: tuple[ast.Stmt, ...], indent: int) -> str:
    if not stmts:
        return "{\n" + "  " * indent + "}"
    inner = "".join(stmt_source(s, indent + 1) for s in stmts)
    return "{\n" + inner + "  " * indent + "}"


def stmt_source(node: ast.Stmt, indent: int = 1) -> str:
    pad = "  " * indent
    if isinstance(node, ast.ExprStmt):
        return f"{pad}{expr_source(node.expr)};\n"
    if isinstance(node, ast.Assign):
        return f"{pad}{expr_source(node.target)} {node.op}= {expr_source(node.expr)};\n"
    if isinstance(node, ast.Jump):
        return f"{pad}{node.kind};\n"
    if isinstance(node, ast.Let):
        if node.expr is None:
            return f"{pad}let {node.var.name};\n"
        if node.type_name is not None:  # (the parser wrapped the value in the cast)
            return f"{pad}let {node.var.name}: {node.type_name} = {expr_source(node.expr.expr)};\n"
        return f"{pad}let {node.var.name} = {expr_source(node.expr)};\n"
    if isinstance(node, ast.If):
        text = f"{pad}if ({expr_source(node.cond)}) {_block(node.then, indent)}"
        if node.orelse is not None:
            text += f" else {_block(node.orelse, indent)}"
        return text + "\n"
    if isinstance(node, ast.Unroll):
        return f"{pad}unroll ({expr_source(node.count)}) {_block(node.body, indent)}\n"
    if isinstance(node, ast.While):
        return f"{pad}while ({expr_source(node.cond)}) {_block(node.body, indent)}\n"
    if isinstance(node, ast.For):
        return f"{pad}for ({node.var.name} : {expr_source(node.iterable)}) {_block(node.body, indent)}\n"
    raise TypeError(f"cannot print {type(node).__name__}")


def to_source(program: ast.Program) -> str:
    """Source text that parses back to an equal Program."""
    out = [d + "\n" for d in program.c_definitions]
    out += [f"let {d.name} = {d.kind}({d.max_entries});\n" for d in program.map_decls]
    for probe in program.probes:
        head = ",\n".join(ap.raw for ap in probe.attach_points)
        if probe.pred is not None:
            head += f" / {expr_source(probe.pred)} /"
        out.append(f"{head}\n{_block(probe.body, 0)}\n")
    return "".join(out)


# -- -d dump ---------------------------------------------------------------
# bpftrace desugars in its parser what we keep as written (a->b is (*a).b,
# "x op= y" is "x = x op y", "-N" a literal); the dump shows its forms.

_UNTYPED_UNOPS = {"*": "dereference", "!": "!", "~": "~", "-": "-", "&": "address-of"}


def _type_suffix(node: ast.Expr) -> str:
    t = node.type
    return f" :: type[{'none' if t is None else t}, ctx: 0]"


def _dump_expr(node: ast.Expr, depth: int, out: list[str]) -> None:
    pad = " " * depth
    sfx = _type_suffix(node)
    if isinstance(node, ast.Integer):
        out.append(f"{pad}int: {node.value}{sfx}")
    elif isinstance(node, ast.String):
        out.append(f"{pad}string: {quote(node.value)[1:-1]}{sfx}")
    elif isinstance(node, ast.Builtin):
        out.append(f"{pad}builtin: {node.name}{sfx}")
    elif isinstance(node, ast.StackMode):
        out.append(f"{pad}stack_mode: {node.name}{sfx}")
    elif isinstance(node, ast.Identifier):
        out.append(f"{pad}identifier: {node.name}{sfx}")
    elif isinstance(node, ast.PositionalParam):
        out.append(f"{pad}param: ${node.index}{sfx}")
    elif isinstance(node, ast.ParamCount):
        out.append(f"{pad}param: $#{sfx}")
    elif isinstance(node, ast.Variable):
        out.append(f"{pad}variable: {node.name}{sfx}")
    elif isinstance(node, ast.Map):
        out.append(f"{pad}map: {node.name}{sfx}")
        for k in node.keys:
            _dump_expr(k, depth + 1, out)
    elif isinstance(node, ast.Call):
        out.append(f"{pad}call: {node.name}{sfx}")
        for a in node.args:
            _dump_expr(a, depth + 1, out)
    elif isinstance(node, ast.Boolean):
        out.append(f"{pad}bool: {'true' if node.value else 'false'}{sfx}")
    elif isinstance(node, ast.Offsetof):
        out.append(f"{pad}offsetof: {node.type_name}, {'.'.join(node.fields)}{sfx}")
    elif isinstance(node, ast.Range):
        out.append(f"{pad}range{sfx}")
        _dump_expr(node.start, depth + 1, out)
        _dump_expr(node.end, depth + 1, out)
    elif isinstance(node, ast.Sizeof):
        out.append(f"{pad}call: sizeof{sfx}")
        if node.expr is not None:
            _dump_expr(node.expr, depth + 1, out)
        else:
            out.append(f"{pad} identifier: {node.type_name} :: type[none, ctx: 0]")
    elif isinstance(node, ast.Binop):
        out.append(f"{pad}{node.op}{sfx}")
        _dump_expr(node.left, depth + 1, out)
        _dump_expr(node.right, depth + 1, out)
    elif isinstance(node, ast.Unop) and node.op in ("++", "--"):
        if node.postfix:
            _dump_expr(node.operand, depth, out)
            out.append(f"{pad} {node.op}")
        else:
            out.append(f"{pad}{node.op}")
            _dump_expr(node.operand, depth + 1, out)
    elif isinstance(node, ast.Unop):
        out.append(f"{pad}{_UNTYPED_UNOPS[node.op]}")
        _dump_expr(node.operand, depth + 1, out)
    elif isinstance(node, ast.Ternary):
        out.append(f"{pad}?:")
        for e in (node.cond, node.left, node.right):
            _dump_expr(e, depth + 1, out)
    elif isinstance(node, ast.BlockExpr):
        out.append(f"{pad}block expression")
        _dump_stmts(node.stmts, depth + 1, out)
        _dump_expr(node.expr, depth + 1, out)
    elif isinstance(node, ast.Elvis):
        out.append(f"{pad}?:")
        for e in (node.left, node.right):
            _dump_expr(e, depth + 1, out)
    elif isinstance(node, ast.FieldAccess):
        out.append(f"{pad}.")
        if node.arrow:
            out.append(f"{pad} dereference")
            _dump_expr(node.expr, depth + 2, out)
        else:
            _dump_expr(node.expr, depth + 1, out)
        out.append(f"{pad} {node.field}")
    elif isinstance(node, ast.TupleAccess):
        out.append(f"{pad}.")
        _dump_expr(node.expr, depth + 1, out)
        out.append(f"{pad} {node.index}")
    elif isinstance(node, ast.ArrayAccess):
        out.append(f"{pad}[]")
        _dump_expr(node.expr, depth + 1, out)
        _dump_expr(node.index, depth + 1, out)
    elif isinstance(node, ast.Cast):
        out.append(f"{pad}({node.type_name}{'*' * node.pointer})")
        _dump_expr(node.expr, depth + 1, out)
    elif isinstance(node, ast.Record):
        out.append(f"{pad}record:")
        for name, e in zip(node.names, node.elems):
            out.append(f"{pad} {name}")
            _dump_expr(e, depth + 2, out)
    elif isinstance(node, ast.Tuple):
        out.append(f"{pad}tuple:")
        for e in node.elems:
            _dump_expr(e, depth + 1, out)
    else:
        raise TypeError(f"cannot dump {type(node).__name__}")


def _dump_stmts(stmts: tuple[ast.Stmt, ...], depth: int, out: list[str]) -> None:
    for s in stmts:
        _dump_stmt(s, depth, out)
        if isinstance(s, ast.While):
            depth += 2  # bpftrace 0.17's printer never undoes a while's indent


def _dump_stmt(node: ast.Stmt, depth: int, out: list[str]) -> None:
    pad = " " * depth
    if isinstance(node, ast.ExprStmt):
        _dump_expr(node.expr, depth, out)
    elif isinstance(node, ast.Assign):
        out.append(f"{pad}=")
        _dump_expr(node.target, depth + 1, out)
        if node.op:
            out.append(f"{pad} {node.op}{_type_suffix(node.expr) if node.expr.type is None else ''}")
            _dump_expr(node.target, depth + 2, out)
            _dump_expr(node.expr, depth + 2, out)
        else:
            _dump_expr(node.expr, depth + 1, out)
    elif isinstance(node, ast.Jump):
        out.append(f"{pad}{node.kind}")
    elif isinstance(node, ast.If):
        out.append(f"{pad}if")
        _dump_expr(node.cond, depth + 1, out)
        out.append(f"{pad} then")
        _dump_stmts(node.then, depth + 2, out)
        if node.orelse is not None:
            out.append(f"{pad} else")
            _dump_stmts(node.orelse, depth + 2, out)
    elif isinstance(node, ast.Unroll):
        out.append(f"{pad}unroll")
        _dump_expr(node.count, depth + 1, out)
        out.append(f"{pad} block")
        _dump_stmts(node.body, depth + 2, out)
    elif isinstance(node, ast.While):
        out.append(f"{pad}while(")
        _dump_expr(node.cond, depth + 1, out)
        out.append(f"{pad} )")
        _dump_stmts(node.body, depth + 2, out)
    elif isinstance(node, ast.For):
        out.append(f"{pad}for")
        _dump_expr(node.var, depth + 1, out)
        _dump_expr(node.iterable, depth + 1, out)
        out.append(f"{pad} stmts")
        _dump_stmts(node.body, depth + 2, out)


def dump(program: ast.Program) -> str:
    """The AST in the layout of ``bpftrace -d`` (without the pass banner).

    C definitions come first, as bpftrace hands them to clang (a struct
    definition gains its ';'), then a blank line.
    """
    out = []
    for d in program.c_definitions:
        out.append(d + (";" if d.startswith(("struct", "union", "enum")) else ""))
    if out:
        out.append("")
    out.append("Program")
    for probe in program.probes:
        # bpftrace names each point by its kind's full name and its parts (quotes gone)
        out.extend(" " + (":".join((ap.kind, *ap.parts)) if ap.kind else ap.raw) for ap in probe.attach_points)
        if probe.pred is not None:
            out.append("  pred")
            _dump_expr(probe.pred, 3, out)
        _dump_stmts(probe.body, 2, out)
    return "\n".join(out) + "\n"


def node_count(program: ast.Program) -> int:
    """How many nodes bpftrace 0.17 counts in this program (``-v``: "INFO: node count: N").

    Its parser builds a few nodes ours leaves out, so those are added back: a
    predicate wrapper, the ``*`` it reads ``a->b`` as (``(*a).b``), and for
    ``x op= y`` the ``x op y`` it rewrites the statement to (a second copy of x).
    """
    def count(obj) -> int:
        if isinstance(obj, (tuple, list)):
            return sum(count(o) for o in obj)
        if not isinstance(obj, ast.Node):
            return 0
        n = 1 + sum(count(getattr(obj, f.name)) for f in fields(obj) if f.name not in ("span", "type"))
        if isinstance(obj, ast.Probe) and obj.pred is not None:
            n += 1
        elif isinstance(obj, ast.FieldAccess) and obj.arrow:
            n += 1
        elif isinstance(obj, ast.Assign) and obj.op:
            n += 1 + count(obj.target)
        return n
    return count(program)
