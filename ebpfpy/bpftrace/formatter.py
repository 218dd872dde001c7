"""``--fmt FILE`` (``--mode format``, bpftrace 0.25+): the script printed back in bpftrace's
layout, on stdout; the file is not touched.

The layout is the one bpftrace 0.26 was seen to print (the notes' E25): a probe's attach
points on a line of their own and its ``{`` on the next, two spaces per block level, a space
around binary operators and after a call's commas, none after the commas of map keys
(``@m[1,"a"]``), ``if (cond) {`` with the brace on the same line, one blank line between the
top-level items.

Conservative by construction, since a formatter that changes what a script means is worse
than none: the printed text must lex to exactly the tokens of the original (only the space
between them may differ). The parser lowers some of today's syntax as it reads it
(``delete(@m, k)``, durations, ``ppid``), and this printer does not keep comments or redundant
parentheses; a script the check refuses, or one with comments, is printed unchanged, with a
warning on stderr saying why.
"""
from __future__ import annotations

import re

from . import ast
from .lexer import tokenize
from .parser import read_program

INDENT = "  "
# binary operators by precedence, as the parser climbs them (the ternary and `?:` below all)
PRECEDENCE = {"||": 1, "&&": 2, "|": 3, "^": 4, "&": 5, "==": 6, "!=": 6, "<": 7, ">": 7, "<=": 7,
              ">=": 7, "<<": 8, ">>": 8, "+": 9, "-": 9, "*": 10, "/": 10, "%": 10}
UNARY_LEVEL = 11
POSTFIX_LEVEL = 12
_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", '"': '\\"', "\\": "\\\\", "\0": "\\0"}
_COMMENT = re.compile(r'"(?:[^"\\\n]|\\.)*"|(//|/\*)')


class Unformattable(Exception):
    """A construct this printer has no form for: the script is printed as it is."""


def format_source(source: str, filename: str = "stdin", compat: str | None = None) -> tuple[str, str | None]:
    """(text to print, why it is the original text or None). Raises Diagnostic for a script that
    does not parse, as a run would."""
    program, macros = read_program(source, filename, (), (), compat)
    if has_comments(source):
        return source, "comments are not kept by pybpftrace's formatter yet"
    try:
        text = Printer().program(program, macros)
    except Unformattable as err:
        return source, str(err)
    if _tokens(text) != _tokens(source):
        return source, "pybpftrace's formatter cannot print this script without changing it yet"
    return text, None


def has_comments(source: str) -> bool:
    """A ``//`` or ``/*`` outside string literals."""
    return any(m.group(1) for m in _COMMENT.finditer(source))


def _tokens(text: str) -> list:
    """The tokens that matter: a ``;`` before ``}`` may be added (the last statement of a block
    needs none), so those are left out on both sides."""
    tokens, errors = tokenize(text, {})
    kept = [(t.kind, t.text.strip()) for i, t in enumerate(tokens)
            if not (t.kind == ";" and i + 1 < len(tokens) and tokens[i + 1].kind == "}")]
    return kept + [("errors", len(errors))]


class Printer:
    """The AST as written (imports, macro calls, predicates kept) back to bpftrace's layout."""

    def program(self, program: ast.Program, macros: dict) -> str:
        head: list[str] = [d.rstrip("\n") for d in program.c_definitions]
        if program.config:
            head.append("config = {\n" + "".join(f"{INDENT}{e.key} = {self.config_value(e.value)};\n"
                                                  for e in program.config) + "}")
        head.extend(f'import "{self.escape(i.path)}";' for i in program.imports)
        items = [(m.span, self.macro(m)) for m in macros.values()]
        items += [(d.span, f"let {d.name} = {d.kind}({d.max_entries});") for d in program.map_decls]
        items += [(p.span, self.probe(p)) for p in program.probes]
        items.sort(key=lambda item: (item[0].line, item[0].col_start))
        parts = head + [text for _, text in items]
        return "\n\n".join(parts) + "\n"

    def config_value(self, value) -> str:
        return str(value) if isinstance(value, int) else value

    def macro(self, macro) -> str:
        body = [self.stmt(s, 1) for s in macro.stmts]
        if macro.value is not None:
            body.append(INDENT + self.expr(macro.value))
        return f"macro {macro.name}({', '.join(macro.params)})\n{{\n" + "".join(b + "\n" for b in body) + "}"

    def probe(self, probe: ast.Probe) -> str:
        header = ", ".join(ap.raw for ap in probe.attach_points)
        if probe.pred is not None:
            header += f" /{self.expr(probe.pred)}/"
        return header + "\n" + self.block(probe.body, 0)

    def block(self, stmts, depth: int) -> str:
        lines = [self.stmt(s, depth + 1) for s in stmts]
        return "{\n" + "".join(line + "\n" for line in lines) + INDENT * depth + "}"

    # -- statements -------------------------------------------------------------------
    def stmt(self, stmt: ast.Stmt, depth: int) -> str:
        pad = INDENT * depth
        if isinstance(stmt, ast.ExprStmt):
            return f"{pad}{self.expr(stmt.expr)};"
        if isinstance(stmt, ast.Assign):
            return f"{pad}{self.expr(stmt.target)} {stmt.op}= {self.expr(stmt.expr)};"
        if isinstance(stmt, ast.Jump):
            return f"{pad}{stmt.kind};"
        if isinstance(stmt, ast.If):
            return pad + self.if_stmt(stmt, depth)
        if isinstance(stmt, ast.While):
            return f"{pad}while ({self.expr(stmt.cond)}) {self.block(stmt.body, depth)}"
        if isinstance(stmt, ast.Unroll):
            return f"{pad}unroll ({self.expr(stmt.count)}) {self.block(stmt.body, depth)}"
        if isinstance(stmt, ast.For):
            return f"{pad}for ({stmt.var.name} : {self.expr(stmt.iterable)}) {self.block(stmt.body, depth)}"
        if isinstance(stmt, ast.Let):
            if stmt.type_name is not None:
                raise Unformattable("typed `let` declarations are not formatted yet")
            value = "" if stmt.expr is None else f" = {self.expr(stmt.expr)}"
            return f"{pad}let {stmt.var.name}{value};"
        raise Unformattable(f"{type(stmt).__name__} statements are not formatted yet")

    def if_stmt(self, stmt: ast.If, depth: int) -> str:
        text = f"if ({self.expr(stmt.cond)}) {self.block(stmt.then, depth)}"
        if stmt.orelse is None:
            return text
        if len(stmt.orelse) == 1 and isinstance(stmt.orelse[0], ast.If):
            return text + " else " + self.if_stmt(stmt.orelse[0], depth)
        return text + " else " + self.block(stmt.orelse, depth)

    # -- expressions ------------------------------------------------------------------
    def expr(self, e: ast.Expr, level: int = 0) -> str:
        """``e`` printed, in parentheses when its own precedence is below ``level``."""
        text, own = self._expr(e)
        return f"({text})" if own < level else text

    def _expr(self, e: ast.Expr) -> tuple[str, int]:
        if isinstance(e, ast.Integer):
            return str(e.value), UNARY_LEVEL if e.value < 0 else POSTFIX_LEVEL
        if isinstance(e, ast.String):
            return f'"{self.escape(e.value)}"', POSTFIX_LEVEL
        if isinstance(e, ast.Boolean):
            return ("true" if e.value else "false"), POSTFIX_LEVEL
        if isinstance(e, (ast.Builtin, ast.Identifier, ast.StackMode, ast.Variable)):
            return e.name, POSTFIX_LEVEL
        if isinstance(e, ast.PositionalParam):
            return f"${e.index}", POSTFIX_LEVEL
        if isinstance(e, ast.ParamCount):
            return "$#", POSTFIX_LEVEL
        if isinstance(e, ast.Map):
            keys = f"[{','.join(self.expr(k) for k in e.keys)}]" if e.indexed else ""
            return e.name + keys, POSTFIX_LEVEL
        if isinstance(e, (ast.Call, ast.MacroCall)):
            return f"{e.name}({', '.join(self.expr(a) for a in e.args)})", POSTFIX_LEVEL
        if isinstance(e, ast.Binop):
            prec = PRECEDENCE[e.op]
            return f"{self.expr(e.left, prec)} {e.op} {self.expr(e.right, prec + 1)}", prec
        if isinstance(e, ast.Unop):
            if e.postfix:
                return f"{self.expr(e.operand, POSTFIX_LEVEL)}{e.op}", POSTFIX_LEVEL
            return f"{e.op}{self.expr(e.operand, UNARY_LEVEL)}", UNARY_LEVEL
        if isinstance(e, ast.Ternary):
            return f"{self.expr(e.cond, 1)} ? {self.expr(e.left)} : {self.expr(e.right)}", 0
        if isinstance(e, ast.Elvis):
            return f"{self.expr(e.left, 1)} ?: {self.expr(e.right)}", 0
        if isinstance(e, ast.FieldAccess):
            return f"{self.expr(e.expr, POSTFIX_LEVEL)}{'->' if e.arrow else '.'}{e.field}", POSTFIX_LEVEL
        if isinstance(e, ast.TupleAccess):
            return f"{self.expr(e.expr, POSTFIX_LEVEL)}.{e.index}", POSTFIX_LEVEL
        if isinstance(e, ast.ArrayAccess):
            return f"{self.expr(e.expr, POSTFIX_LEVEL)}[{self.expr(e.index)}]", POSTFIX_LEVEL
        if isinstance(e, ast.Cast):
            return f"({e.type_name}{' ' + '*' * e.pointer if e.pointer else ''}){self.expr(e.expr, UNARY_LEVEL)}", \
                UNARY_LEVEL
        if isinstance(e, ast.Tuple):
            inner = ", ".join(self.expr(x) for x in e.elems)
            return f"({inner},)" if len(e.elems) == 1 else f"({inner})", POSTFIX_LEVEL
        if isinstance(e, ast.Record):
            return "(" + ", ".join(f"{n}={self.expr(x)}" for n, x in zip(e.names, e.elems)) + ")", POSTFIX_LEVEL
        if isinstance(e, ast.Range):
            return f"{self.expr(e.start, 1)}..{self.expr(e.end, 1)}", 0
        raise Unformattable(f"{type(e).__name__} expressions are not formatted yet")

    @staticmethod
    def escape(text: str) -> str:
        return "".join(_ESCAPES.get(c, c) for c in text)
