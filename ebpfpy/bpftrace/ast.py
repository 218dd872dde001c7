"""The bpftrace AST: one frozen dataclass per node kind.

Nodes are values: equality ignores spans and types, so two parses of the same
program compare equal however they were laid out (the printer round-trip test
relies on this).  The one mutable slot is ``Expr.type``, which semantic
analysis fills in once (via ``set_type``) so codegen can read ``node.type``
directly; nothing else changes a node after parsing.

Codegen dispatches on the class, so each kind of thing the language can say
has its own class rather than a generic node with a tag.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any

from .diagnostics import NOWHERE, Span


@dataclass(frozen=True)
class Node:
    span: Span = field(default=NOWHERE, compare=False, repr=False, kw_only=True)

    def children(self) -> Iterator[Node]:
        """Direct child nodes, in source order (for generic walks)."""
        for f in fields(self):
            if f.name in ("span", "type"):
                continue
            val = getattr(self, f.name)
            if isinstance(val, Node):
                yield val
            elif isinstance(val, tuple):
                for v in val:
                    if isinstance(v, Node):
                        yield v


# -- expressions ------------------------------------------------------------

@dataclass(frozen=True)
class Expr(Node):
    type: Any = field(default=None, compare=False, repr=False, kw_only=True)


def set_type(node: Expr, typ: Any) -> None:
    """Annotate an expression with its type (semantic analysis only)."""
    object.__setattr__(node, "type", typ)


@dataclass(frozen=True)
class Integer(Expr):
    value: int


@dataclass(frozen=True)
class String(Expr):
    value: str


@dataclass(frozen=True)
class Builtin(Expr):
    """A builtin variable: ``pid``, ``arg0``, ``retval``, ``kstack``, ..."""
    name: str


@dataclass(frozen=True)
class Identifier(Expr):
    """A bare name in expression position (an enum value or an error)."""
    name: str


@dataclass(frozen=True)
class StackMode(Expr):
    """``bpftrace`` / ``perf`` as the first argument of kstack()/ustack()."""
    name: str


@dataclass(frozen=True)
class PositionalParam(Expr):
    """``$1`` .. ``$N``."""
    index: int


@dataclass(frozen=True)
class ParamCount(Expr):
    """``$#``."""


@dataclass(frozen=True)
class Variable(Expr):
    """A scratch variable ``$name`` (name includes the ``$``)."""
    name: str


@dataclass(frozen=True)
class Map(Expr):
    """``@name`` or ``@name[k1, k2]``; ``@`` alone has the name ``@``."""
    name: str
    keys: tuple[Expr, ...] = ()
    indexed: bool = False  # written with [...]


@dataclass(frozen=True)
class Call(Expr):
    name: str
    args: tuple[Expr, ...] = ()


@dataclass(frozen=True)
class Sizeof(Expr):
    """``sizeof(type)`` (``type_name`` set) or ``sizeof(expr)``."""
    type_name: str | None = None
    expr: Expr | None = None


@dataclass(frozen=True)
class Binop(Expr):
    """``span`` covers the whole expression; ``op_span`` the operator (warnings)."""
    op: str
    left: Expr
    right: Expr
    op_span: Span = field(default=NOWHERE, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class Unop(Expr):
    """``! ~ - *`` and ``++ --`` (``postfix`` for ``x++``)."""
    op: str
    operand: Expr
    postfix: bool = False


@dataclass(frozen=True)
class Ternary(Expr):
    cond: Expr
    left: Expr
    right: Expr


@dataclass(frozen=True)
class FieldAccess(Expr):
    """``expr.field`` or ``expr->field`` (``arrow``)."""
    expr: Expr
    field: str
    arrow: bool = False


@dataclass(frozen=True)
class TupleAccess(Expr):
    """``expr.N``."""
    expr: Expr
    index: int


@dataclass(frozen=True)
class ArrayAccess(Expr):
    expr: Expr
    index: Expr


@dataclass(frozen=True)
class Cast(Expr):
    """``(type)expr``; ``type_name`` like ``uint8`` or ``struct task_struct``."""
    type_name: str
    pointer: int
    expr: Expr


@dataclass(frozen=True)
class Tuple(Expr):
    elems: tuple[Expr, ...]


# -- statements -------------------------------------------------------------

@dataclass(frozen=True)
class Stmt(Node):
    pass


@dataclass(frozen=True)
class ExprStmt(Stmt):
    expr: Expr


@dataclass(frozen=True)
class Assign(Stmt):
    """``target = expr`` or ``target op= expr`` (``op`` like ``+`` or ``<<``).

    ``target`` is a Map or a Variable.
    """
    target: Map | Variable
    expr: Expr
    op: str = ""


@dataclass(frozen=True)
class If(Stmt):
    """``else if`` is an else block holding one If."""
    cond: Expr
    then: tuple[Stmt, ...]
    orelse: tuple[Stmt, ...] | None = None


@dataclass(frozen=True)
class Unroll(Stmt):
    count: Expr
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class While(Stmt):
    cond: Expr
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class Jump(Stmt):
    """``break``, ``continue`` or ``return``."""
    kind: str


# -- top level ---------------------------------------------------------------

@dataclass(frozen=True)
class AttachPoint(Node):
    """One probe spec: the raw text, its kind (alias resolved) and ':' parts."""
    raw: str
    kind: str = ""
    parts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Probe(Node):
    """``pred_span`` covers the predicate with its slashes (bpftrace reports that)."""
    attach_points: tuple[AttachPoint, ...]
    pred: Expr | None
    body: tuple[Stmt, ...]
    pred_span: Span = field(default=NOWHERE, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class Program(Node):
    """``c_definitions``: ``#include``/``#define`` lines and struct definitions, in order."""
    c_definitions: tuple[str, ...]
    probes: tuple[Probe, ...]


def walk(node: Node) -> Iterator[Node]:
    """Pre-order walk over a subtree."""
    yield node
    for child in node.children():
        yield from walk(child)
