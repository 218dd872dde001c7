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
from dataclasses import FrozenInstanceError, dataclass, field, fields
from typing import Any

from .diagnostics import NOWHERE, Span


def node(cls):
    """``@dataclass`` for AST nodes: values, frozen once built.

    Not ``@dataclass(frozen=True)``: that generates a ``__setattr__`` and a
    ``__delattr__`` per class, which made importing this module a tenth of a
    one-liner's start-up. Their shared base ``_Frozen`` instead refuses to
    change a field that is already set (the generated ``__init__`` sets each
    once) and gives the hash that goes with the generated ``__eq__``.
    """
    cls = dataclass(cls)
    cls.__hash__ = _Frozen.__hash__
    return cls


class _Frozen:
    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.__dict__:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, f.name) for f in fields(self) if f.compare))


@node
class Node(_Frozen):
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

@node
class Expr(Node):
    type: Any = field(default=None, compare=False, repr=False, kw_only=True)


def set_type(node: Expr, typ: Any) -> None:
    """Annotate an expression with its type (semantic analysis only)."""
    object.__setattr__(node, "type", typ)


def lower_to_arrow(node: FieldAccess) -> None:
    """Today's ``ptr.field`` (bpftrace 0.25+) is 0.17's ``ptr->field``: semantic analysis,
    which alone knows ``ptr`` is a pointer, marks the node so codegen reads it the 0.17 way."""
    object.__setattr__(node, "arrow", True)


def set_size(node: Sizeof, size: int | None) -> None:
    """Record what a sizeof() evaluates to (semantic analysis only)."""
    object.__setattr__(node, "size", size)


@node
class Integer(Expr):
    value: int


@node
class String(Expr):
    value: str


@node
class Builtin(Expr):
    """A builtin variable: ``pid``, ``arg0``, ``retval``, ``kstack``, ..."""
    name: str


@node
class Identifier(Expr):
    """A bare name in expression position (an enum value or an error)."""
    name: str


@node
class StackMode(Expr):
    """``bpftrace`` / ``perf`` as the first argument of kstack()/ustack()."""
    name: str


@node
class PositionalParam(Expr):
    """``$1`` .. ``$N``."""
    index: int


@node
class ParamCount(Expr):
    """``$#``."""


@node
class Variable(Expr):
    """A scratch variable ``$name`` (name includes the ``$``)."""
    name: str


@node
class Map(Expr):
    """``@name`` or ``@name[k1, k2]``; ``@`` alone has the name ``@``."""
    name: str
    keys: tuple[Expr, ...] = ()
    indexed: bool = False  # written with [...]


@node
class Call(Expr):
    name: str
    args: tuple[Expr, ...] = ()


@node
class MacroCall(Expr):
    """``name(args)`` where ``name`` is no function (today's language): a macro's call, which
    ``macros.py`` expands before any other pass sees it."""
    name: str
    args: tuple[Expr, ...] = ()
    name_span: Span = field(default=NOWHERE, compare=False, repr=False, kw_only=True)


@node
class Sizeof(Expr):
    """``sizeof(type)`` (``type_name`` set) or ``sizeof(expr)``; ``size`` is its value, set by
    semantic analysis (``set_size``) where the type tells it, for codegen to load."""
    type_name: str | None = None
    expr: Expr | None = None
    size: int | None = field(default=None, compare=False, repr=False, kw_only=True)


@node
class Offsetof(Expr):
    """``offsetof(struct T, f[.g...])`` (bpftrace 0.18+); ``offset`` is set by semantic
    analysis (``set_size``), for codegen to load."""
    type_name: str
    fields: tuple[str, ...]
    size: int | None = field(default=None, compare=False, repr=False, kw_only=True)


@node
class Boolean(Expr):
    """``true`` or ``false`` (bpftrace 0.24+: type bool)."""
    value: bool


@node
class Binop(Expr):
    """``span`` covers the whole expression; ``op_span`` the operator (warnings)."""
    op: str
    left: Expr
    right: Expr
    op_span: Span = field(default=NOWHERE, compare=False, repr=False, kw_only=True)


@node
class Unop(Expr):
    """``! ~ - *`` and ``++ --`` (``postfix`` for ``x++``); today's ``&$var`` (bpftrace 0.26)."""
    op: str
    operand: Expr
    postfix: bool = False


@node
class Ternary(Expr):
    cond: Expr
    left: Expr
    right: Expr


@node
class Elvis(Expr):
    """``left ?: right`` (bpftrace 0.26): ``left`` when it is true (non-zero), else ``right``;
    ``left`` is evaluated once."""
    left: Expr
    right: Expr


@node
class FieldAccess(Expr):
    """``expr.field`` or ``expr->field`` (``arrow``)."""
    expr: Expr
    field: str
    arrow: bool = False


@node
class TupleAccess(Expr):
    """``expr.N``."""
    expr: Expr
    index: int


@node
class ArrayAccess(Expr):
    expr: Expr
    index: Expr


@node
class Cast(Expr):
    """``(type)expr``; ``type_name`` like ``uint8`` or ``struct task_struct``."""
    type_name: str
    pointer: int
    expr: Expr


@node
class Tuple(Expr):
    elems: tuple[Expr, ...]


@node
class Record(Expr):
    """``(name="bob", age=42)`` (bpftrace 0.25+): a tuple whose elements have names."""
    names: tuple[str, ...]
    elems: tuple[Expr, ...]


@node
class BlockExpr(Expr):
    """``{ stmts; expr }`` (bpftrace 0.24+): the statements, in a block of their own, then the
    value of ``expr``."""
    stmts: tuple[Stmt, ...]
    expr: Expr


# -- statements -------------------------------------------------------------

@node
class Stmt(Node):
    pass


@node
class ExprStmt(Stmt):
    expr: Expr


@node
class Assign(Stmt):
    """``target = expr`` or ``target op= expr`` (``op`` like ``+`` or ``<<``).

    ``target`` is a Map or a Variable.
    """
    target: Map | Variable
    expr: Expr
    op: str = ""


@node
class If(Stmt):
    """``else if`` is an else block holding one If."""
    cond: Expr
    then: tuple[Stmt, ...]
    orelse: tuple[Stmt, ...] | None = None


@node
class Unroll(Stmt):
    count: Expr
    body: tuple[Stmt, ...]


@node
class While(Stmt):
    cond: Expr
    body: tuple[Stmt, ...]


@node
class Range(Expr):
    """``start..end`` of a ``for`` loop (bpftrace 0.24+): start included, end excluded."""
    start: Expr
    end: Expr


@node
class For(Stmt):
    """``for ($kv : @map) {...}`` (bpftrace 0.21+; ``$kv`` is ``(key, value)``) or
    ``for ($i : a..b) {...}`` (0.24+; ``iterable`` a Range)."""
    var: Variable
    iterable: Expr
    body: tuple[Stmt, ...]


@node
class Jump(Stmt):
    """``break``, ``continue`` or ``return``."""
    kind: str


@node
class Let(Stmt):
    """``let $x;``, ``let $x = expr;``, ``let $x: type = expr;`` (bpftrace 0.22+): declares
    ``var`` in the enclosing block. A ``type_name`` without ``expr`` starts the variable at 0
    of that type (the parser gives it ``expr``: the cast of 0); no type and no value leave it
    to the first assignment."""
    var: Variable
    expr: Expr | None = None
    type_name: str | None = None


# -- top level ---------------------------------------------------------------

@node
class AttachPoint(Node):
    """One probe spec: the raw text, its kind (alias resolved) and ':' parts."""
    raw: str
    kind: str = ""
    parts: tuple[str, ...] = ()


@node
class Probe(Node):
    """``pred_span`` covers the predicate with its slashes (bpftrace reports that)."""
    attach_points: tuple[AttachPoint, ...]
    pred: Expr | None
    body: tuple[Stmt, ...]
    pred_span: Span = field(default=NOWHERE, compare=False, repr=False, kw_only=True)


@node
class MapDecl(Node):
    """``let @m = lruhash(N);`` at the top level (bpftrace 0.24+): the kind and size of ``@m``'s
    BPF map (``kind`` as written; semantic analysis checks it)."""
    name: str
    kind: str
    max_entries: int


@node
class Program(Node):
    """``c_definitions``: ``#include``/``#define`` lines and struct definitions, in order."""
    c_definitions: tuple[str, ...]
    probes: tuple[Probe, ...]
    config: tuple[ConfigEntry, ...] = ()  # `config = { key = value; ... }` (bpftrace 0.20+)
    map_decls: tuple[MapDecl, ...] = ()  # `let @m = hash(N);` (bpftrace 0.24+)
    # `import "file";` (bpftrace 0.26), as written: imports.py merges the files in and empties it
    imports: tuple[Import, ...] = ()


@node
class Import(Node):
    """``import "path";``: the name as written, resolved by imports.py before semantic analysis."""
    path: str


@node
class ConfigEntry(Node):
    """One ``key = value`` of a ``config`` block; ``value`` an int or a str (quoted or a bare word)."""
    key: str
    value: int | str


def walk(node: Node) -> Iterator[Node]:
    """Pre-order walk over a subtree."""
    yield node
    for child in node.children():
        yield from walk(child)
