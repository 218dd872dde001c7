"""Macro expansion (bpftrace 0.24+, today's language): ``macro name(x, $v, @m) { ...; expr }``.

One pass over the parsed program, before attach points are resolved: each call of a macro
(``name(args)``, or a bare ``name`` for a macro without parameters) is replaced by its body,
so semantic analysis and codegen never see a macro. Expansion is hygienic, as in bpftrace:

- a parameter ``x`` takes any expression, evaluated once (into a variable of the expansion's
  own, declared with ``let``);
- a parameter ``$v`` takes a variable and a parameter ``@m`` a map: the body uses the caller's
  (``bump($a, @c)`` changes ``$a`` and ``@c``);
- the body's other variables are the expansion's own (renamed, so they meet nothing of the
  caller's), and a map that was not passed in is an error.

A macro whose body ends with an expression (no ``;`` after it) has that value: its call is a
block expression (``ast.BlockExpr``). One without a value is spliced in as statements, and can
only be called as a statement.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

from . import ast
from .diagnostics import Diagnostic, Message, Span

MAX_DEPTH = 64  # expansions inside expansions: deeper is a macro that calls itself


@dataclass(frozen=True)
class Macro:
    """One definition: ``params`` as written (``x``, ``$v``, ``@m``); ``value`` None when the
    body ends with a statement."""

    name: str
    params: tuple[str, ...]
    stmts: tuple[ast.Stmt, ...]
    value: ast.Expr | None
    span: Span


class _Failed(Exception):
    def __init__(self, *messages: Message):
        self.messages = list(messages)


def expand_macros(program: ast.Program, macros: dict[str, Macro]) -> ast.Program:
    """``program`` with every macro call expanded; Diagnostic for a call that cannot be."""
    expander = _Expander(macros)
    try:
        probes = tuple(replace(p, pred=expander.expr(p.pred, 0) if p.pred is not None else None,
                               body=expander.stmts(p.body, 0)) for p in program.probes)
    except _Failed as err:
        raise Diagnostic(err.messages) from None
    return replace(program, probes=probes)


class _Expander:
    def __init__(self, macros: dict[str, Macro]):
        self.macros = macros
        self.count = 0

    # -- walking the program ----------------------------------------------------------
    def stmts(self, stmts: tuple[ast.Stmt, ...], depth: int) -> tuple[ast.Stmt, ...]:
        out: list[ast.Stmt] = []
        for stmt in stmts:
            if isinstance(stmt, ast.ExprStmt) and self._is_call(stmt.expr):
                out.extend(self.expand(stmt.expr, depth, statement=True))
            else:
                out.append(self.node(stmt, depth))
        return tuple(out)

    def expr(self, node: ast.Expr, depth: int) -> ast.Expr:
        if self._is_call(node):
            return self.expand(node, depth, statement=False)
        if isinstance(node, ast.MacroCall):  # no macro of that name: 0.26's words, the whole call
            raise _Failed(Message(f"Unknown function: '{node.name}'", node.span))
        return self.node(node, depth)

    def node(self, node: ast.Node, depth: int) -> ast.Node:
        """``node`` with its children expanded (a new node only when one changed)."""
        changes = {}
        for f in fields(node):
            if f.name in ("span", "type") or not f.compare:
                continue
            value = getattr(node, f.name)
            new = value
            if isinstance(value, ast.Stmt):
                new = self.node(value, depth)
            elif isinstance(value, ast.Expr):
                new = self.expr(value, depth)
            elif isinstance(value, tuple) and value and isinstance(value[0], ast.Stmt):
                new = self.stmts(value, depth)
            elif isinstance(value, tuple) and value and isinstance(value[0], ast.Expr):
                new = tuple(self.expr(v, depth) for v in value)
            if new is not value:
                changes[f.name] = new
        return replace(node, **changes) if changes else node

    def _is_call(self, node: ast.Node) -> bool:
        if isinstance(node, ast.MacroCall):
            return node.name in self.macros
        return isinstance(node, ast.Identifier) and node.name in self.macros and not self.macros[node.name].params

    # -- one call ------------------------------------------------------------------------
    def expand(self, call: ast.Expr, depth: int, statement: bool) -> tuple[ast.Stmt, ...] | ast.Expr:
        macro = self.macros[call.name]
        args = call.args if isinstance(call, ast.MacroCall) else ()
        if depth >= MAX_DEPTH:
            raise _Failed(Message(f"Macro '{macro.name}' is expanded more than {MAX_DEPTH} levels deep "
                                  "(does it call itself?)", call.span))
        if len(args) != len(macro.params):
            raise _Failed(Message(f"Call to macro '{macro.name}' has {len(args)} argument"
                                  f"{'' if len(args) == 1 else 's'}; the macro takes {len(macro.params)}",
                                  call.span))
        if macro.value is None and not statement:
            raise _Failed(Message(f"Macro '{macro.name}' has no value (its body does not end with an "
                                  "expression): call it as a statement", call.span))
        self.count += 1
        suffix = f"__{macro.name}{self.count}"
        renames: dict[str, str] = {}  # body's $variable -> the name it has in this expansion
        map_renames: dict[str, str] = {}
        idents: dict[str, ast.Expr] = {}  # body's x -> the variable holding its value
        lets: list[ast.Stmt] = []
        for param, arg in zip(macro.params, args):
            if param.startswith("$"):
                if not isinstance(arg, ast.Variable):
                    raise _Failed(Message(f"Macro '{macro.name}': parameter {param} takes a variable", arg.span))
                renames[param] = arg.name
            elif param.startswith("@"):
                if not isinstance(arg, ast.Map) or arg.indexed:
                    raise _Failed(Message(f"Macro '{macro.name}': parameter {param} takes a map (without keys)",
                                          arg.span))
                map_renames[param] = arg.name
            else:
                hidden = ast.Variable(f"${param}{suffix}", span=arg.span)
                lets.append(ast.Let(hidden, self.expr(arg, depth), span=arg.span))
                idents[param] = hidden
        rename = _Rename(macro, call, renames, map_renames, idents, suffix)
        stmts = tuple(lets) + tuple(rename.node(s) for s in macro.stmts)
        stmts = self.stmts(stmts, depth + 1)
        if macro.value is None:
            return stmts
        value = self.expr(rename.node(macro.value), depth + 1)
        block = ast.BlockExpr(stmts, value, span=call.span) if stmts else value
        return (ast.ExprStmt(block, span=call.span),) if statement else block


class _Rename:
    """A macro's body as one expansion sees it: parameters bound, its own variables renamed
    (its nodes keep their spans in the definition)."""

    def __init__(self, macro: Macro, call: ast.Expr, renames, map_renames, idents, suffix: str):
        self.macro, self.call = macro, call
        self.renames, self.map_renames, self.idents, self.suffix = renames, map_renames, idents, suffix

    def node(self, node: ast.Node) -> ast.Node:
        if isinstance(node, ast.Identifier) and node.name in self.idents:
            return self.idents[node.name]
        changes = {}
        for f in fields(node):
            if f.name in ("span", "type") or not f.compare:
                continue
            value = getattr(node, f.name)
            if isinstance(value, ast.Node):
                changes[f.name] = self.node(value)
            elif isinstance(value, tuple) and value and isinstance(value[0], ast.Node):
                changes[f.name] = tuple(self.node(v) for v in value)
        if isinstance(node, ast.Variable):
            changes["name"] = self.renames.get(node.name, node.name + self.suffix)
        elif isinstance(node, ast.Map):
            if node.name not in self.map_renames:
                raise _Failed(Message(f"Unhygienic access to map: {node.name}. Maps must be passed into the "
                                      "macro as arguments.", node.span),
                              Message("expanded from", self.call.span))
            changes["name"] = self.map_renames[node.name]
        return replace(node, **changes) if changes else node
