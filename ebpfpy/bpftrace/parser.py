"""Recursive-descent parser for bpftrace 0.17: tokens -> ``ast.Program``.

Hand-written (precedence climbing for binary operators) so each error can
say exactly what bison's LALR parser says at the same place.  bison names
only the tokens it could have accepted when there are at most four of them;
the ``expecting`` lists below are those observed from bpftrace 0.17 for each
spot, and an error where an expression should start lists nothing.

bpftrace's own precedences (lowest first): ``?:`` (left associative!),
``||``, ``&&``, ``|``, ``^``, ``&``, ``== !=``, ``< > <= >=``, ``<< >>``,
``+ -``, ``* / %``, then unary ``! ~ - *`` and casts, then postfix ``. -> []``.
Assignments are statements, not expressions.
"""
from __future__ import annotations

from . import ast
from .compat import is_modern
from .diagnostics import Diagnostic, Message, Verbatim
from .functions import MODERN_ONLY
from .lexer import DEFAULT_INCLUDE_DIRS, HeaderNotFound, Token, header_macros, param_range_error, tokenize
from .macros import Macro, expand_macros
from .parser_top import WORD_KINDS, TopLevel, _SyntaxError, check_attach_points

# Duration suffixes of integer literals (bpftrace 0.24+: ``100ms``), in nanoseconds.
DURATION_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
                  "h": 3_600_000_000_000, "d": 86_400_000_000_000}
# Builtins of today's language that are spelled in the script as what they stand for (the
# emitters already know the long form): name -> (builtin, field chain through pointers).
LOWERED_BUILTINS = {"ppid": ("curtask", ("real_parent", "tgid")),
                    "pcomm": ("curtask", ("real_parent", "comm"))}
# Functions only today's language has: in 0.17 mode they are unknown, as 0.17 says.
MODERN_FUNCTIONS = MODERN_ONLY

BINARY_PRECEDENCE: dict[str, int] = {
    "||": 1, "&&": 2, "|": 3, "^": 4, "&": 5,
    "==": 6, "!=": 6, "<": 7, ">": 7, "<=": 7, ">=": 7,
    "<<": 8, ">>": 8, "+": 9, "-": 9, "*": 10, "/": 10, "%": 10,
}
COMPOUND_ASSIGN = {"+=": "+", "-=": "-", "*=": "*", "/=": "/", "%=": "%", "&=": "&",
                   "|=": "|", "^=": "^", "<<=": "<<", ">>=": ">>"}
UNARY = ("!", "~", "-", "*")
EXPR_START = {"INT", "STRING", "BUILTIN", "CALL", "CALL_BUILTIN", "STACK_MODE", "PARAM",
              "PARAMCOUNT", "VAR", "MAP", "IDENT", "(", "!", "~", "-", "*", "++", "--"}
BLOCK_STMTS = ("if", "unroll", "while")
JUMPS = ("break", "continue", "return")


class Parser(TopLevel):
    """Statements and expressions; the top level (probes, config, imports, macros) is ``TopLevel``."""

    def __init__(self, tokens: list[Token], compat: str | None = None, library: bool = False):
        self.toks = tokens
        self.i = 0
        self.library = library  # an imported file (imports.py): definitions alone are a whole file
        # today's language (compat.py): newer syntax on top of 0.17's
        self.modern = is_modern(compat)
        self.macros: dict[str, Macro] = {}  # `macro name(...) { }` definitions (macros.py expands calls)

    # -- token helpers ---------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def peek(self, n: int = 1) -> Token:
        return self.toks[min(self.i + n, len(self.toks) - 1)]

    def next(self) -> Token:
        tok = self.toks[self.i]
        if self.i < len(self.toks) - 1:
            self.i += 1
        return tok

    def fail(self, *expecting: str, tok: Token | None = None) -> _SyntaxError:
        tok = tok or self.tok
        text = f"syntax error, unexpected {tok.display}"
        if expecting:
            text += ", expecting " + " or ".join(expecting)
        return _SyntaxError(Message(text, tok.span))

    def expect(self, kind: str, *expecting: str) -> Token:
        if self.tok.kind != kind:
            raise self.fail(*(expecting or (kind,)))
        return self.next()

    def block(self) -> tuple[ast.Stmt, ...]:
        self.expect("{")
        stmts: list[ast.Stmt] = []
        while self.tok.kind != "}":
            kind = self.tok.kind
            if kind in BLOCK_STMTS or (kind == "for" and self.modern):
                stmts.append(self.block_stmt())
                continue
            if kind not in EXPR_START and kind not in JUMPS:
                raise self.fail("}")
            stmts.append(self.stmt())
            if self.tok.kind == ";":
                self.next()
            elif self.tok.kind != "}":
                raise self.fail("}")
        self.next()
        return tuple(stmts)

    # -- statements --------------------------------------------------------
    def block_stmt(self) -> ast.Stmt:
        tok = self.next()
        if tok.kind == "if":
            return self.if_rest(tok)
        if tok.kind == "for":
            return self.for_rest(tok)
        if tok.kind == "while":
            self.expect("(")
            cond = self.expr()
            self.expect(")")
            if self.tok.kind != "{":
                raise self.fail("{")
            return ast.While(cond, self.block(), span=tok.span)
        # unroll
        self.expect("(")
        t = self.tok
        if t.kind == "INT":
            count: ast.Expr = ast.Integer(self.next().value, span=t.span)
        elif t.kind == "PARAM":
            count = self.param(self.next())
        elif t.kind == "PARAMCOUNT":
            self.next()
            count = ast.ParamCount(span=t.span)
        elif t.kind == "-" and self.peek().kind == "INT":
            self.next()
            n = self.next()
            count = ast.Integer(-n.value, span=t.span.to(n.span))
        else:
            raise self.fail("$#", "-", "positional parameter", "integer")
        end = self.expect(")")
        if self.tok.kind != "{":
            raise self.fail("{")
        return ast.Unroll(count, self.block(), span=tok.span.to(end.span))

    def for_rest(self, tok: Token) -> ast.For:
        """After ``for`` (today's language): ``[(] $var : (@map | a..b) [)] { ... }``."""
        paren = self.tok.kind == "("
        if paren:
            self.next()
        if self.tok.kind != "VAR":
            raise self.fail("variable")
        var_tok = self.next()
        self.expect(":")
        if self.tok.kind == "MAP" and self.peek().kind in (")", "{"):
            m = self.next()
            iterable: ast.Expr = ast.Map(m.text, span=m.span)
        else:
            start = self.expr()
            if self.tok.kind != "." or self.peek().kind != ".":
                raise self.fail("..")
            self.next()
            self.next()
            end = self.expr()
            iterable = ast.Range(start, end, span=start.span.to(end.span))
        if paren:
            self.expect(")")
        if self.tok.kind != "{":
            raise self.fail("{")
        return ast.For(ast.Variable(var_tok.text, span=var_tok.span), iterable, self.block(), span=tok.span)

    def if_rest(self, tok: Token) -> ast.If:
        if self.modern and self.tok.kind != "(":
            cond = self.unary()  # `if $x {`: a unary expression only, as in bpftrace 0.24+
        else:
            self.expect("(")
            cond = self.expr()
            self.expect(")")
        if self.tok.kind != "{":
            raise self.fail("{")
        then = self.block()
        orelse = None
        if self.tok.kind == "else":
            self.next()
            if self.tok.kind == "if":
                orelse = (self.if_rest(self.next()),)
            elif self.tok.kind == "{":
                orelse = self.block()
            else:
                raise self.fail("{", "if")
        return ast.If(cond, then, orelse, span=tok.span)

    def stmt(self) -> ast.Stmt:
        tok = self.tok
        if tok.kind in JUMPS:
            self.next()
            return ast.Jump(tok.kind, span=tok.span)
        if self.modern and tok.kind == "IDENT" and tok.text == "let" and self.peek().kind == "VAR":
            return self.let_rest(self.next())
        if self.modern and tok.kind == "IDENT" and tok.text == "_" and self.peek().kind == "=":
            self.next()
            self.next()
            expr = self.expr()  # `_ = expr`: the value is discarded
            return ast.ExprStmt(expr, span=tok.span.to(expr.span))
        expr = self.expr()
        kind = self.tok.kind
        if kind == "=" and isinstance(expr, ast.TupleAccess):
            self.next()
            rhs = self.expr()
            raise _SyntaxError(Message("Tuples are immutable once created. Consider creating a new "
                                       "tuple and assigning it instead.", expr.span.to(rhs.span)))
        if kind == "=" or kind in COMPOUND_ASSIGN:
            if not isinstance(expr, (ast.Map, ast.Variable)):
                raise self.fail("}")
            op_tok = self.next()
            rhs = self.expr()
            return ast.Assign(expr, rhs, COMPOUND_ASSIGN.get(kind, ""), span=op_tok.span)
        return ast.ExprStmt(expr, span=expr.span)

    def let_rest(self, let: Token) -> ast.Let:
        """After ``let``: ``$x [: type] [= expr]``."""
        var_tok = self.next()
        var = ast.Variable(var_tok.text, span=var_tok.span)
        type_name = None
        if self.tok.kind == "PATH":  # `$x:uint16`, read by the lexer as a path
            type_name = self.next().text[1:]
        elif self.tok.kind == ":":
            self.next()
            if self.tok.kind not in ("IDENT", "STRUCT_TYPE"):
                raise self.fail()
            t = self.next()
            type_name = t.value if t.kind == "STRUCT_TYPE" else t.text
        expr = None
        if self.tok.kind == "=":
            self.next()
            expr = self.expr()
        if type_name is not None:
            base = expr if expr is not None else ast.Integer(0, span=var.span)
            expr = ast.Cast(type_name, 0, base, span=base.span)
        return ast.Let(var, expr, type_name, span=let.span.to(expr.span if expr is not None else var.span))

    # -- expressions ---------------------------------------------------------
    def expr(self) -> ast.Expr:
        cond = self.binary(1)
        if self.tok.kind != "?":
            return cond
        if self.modern and self.peek().kind == ":":  # `a ?: b` (bpftrace 0.26)
            self.next()
            self.next()
            right = self.expr()
            return ast.Elvis(cond, right, span=cond.span.to(right.span))
        # right-associative, as in bpftrace: a ? b : c ? d : e is a ? b : (c ? d : e)
        self.next()
        left = self.expr()
        self.expect(":")
        right = self.expr()
        return ast.Ternary(cond, left, right, span=cond.span.to(right.span))

    def binary(self, min_prec: int) -> ast.Expr:
        left = self.unary()
        while True:
            op = self.tok.kind
            prec = BINARY_PRECEDENCE.get(op)
            if prec is None or prec < min_prec:
                return left
            op_tok = self.next()
            right = self.binary(prec + 1)
            left = ast.Binop(op, left, right, span=left.span.to(right.span), op_span=op_tok.span)

    def unary(self) -> ast.Expr:
        tok = self.tok
        if tok.kind == "-" and self.peek().kind == "INT":
            # bpftrace folds "-N" into one negative literal
            self.next()
            n = self.next()
            return self.postfix(ast.Integer(-n.value, span=tok.span.to(n.span)))
        if tok.kind in UNARY:
            self.next()
            operand = self.unary()
            return ast.Unop(tok.kind, operand, span=tok.span)
        if self.modern and tok.kind == "&" and self.peek().kind == "VAR":  # `&$v` (bpftrace 0.26)
            self.next()
            var = self.next()
            return ast.Unop("&", ast.Variable(var.text, span=var.span), span=tok.span.to(var.span))
        if tok.kind in ("++", "--"):
            self.next()
            target = self.tok
            if target.kind not in ("MAP", "VAR"):
                raise self.fail()
            operand = self.primary()
            return ast.Unop(tok.kind, operand, span=tok.span.to(operand.span))
        if tok.kind == "(" and self._is_cast():
            self.next()
            name_tok = self.next()
            stars, last = 0, name_tok
            while self.tok.kind == "*":
                last = self.next()
                stars += 1
            end = self.expect(")")
            operand = self.unary()
            name = name_tok.value if name_tok.kind == "STRUCT_TYPE" else name_tok.text
            # bpftrace's span for "(type *)" stops at the last '*'
            close = last if stars else end
            return ast.Cast(name, stars, operand, span=tok.span.to(close.span))
        return self.postfix(self.primary())

    def _is_cast(self) -> bool:
        """``(ident)``, ``(ident *)`` or ``(struct X *)`` starts a cast."""
        first = self.peek(1)
        if first.kind not in ("IDENT", "STRUCT_TYPE"):
            return False
        n = 2
        while self.peek(n).kind == "*":
            n += 1
        return self.peek(n).kind == ")"

    def postfix(self, expr: ast.Expr) -> ast.Expr:
        while True:
            kind = self.tok.kind
            if kind == "." and self.modern and self.peek().kind == ".":
                return expr  # `a..b`, a for loop's range
            if kind == ".":
                dot = self.next()
                t = self.tok
                if t.kind == "INT":
                    self.next()
                    expr = ast.TupleAccess(expr, t.value, span=expr.span.to(t.span))
                elif t.kind in WORD_KINDS:
                    self.next()
                    expr = ast.FieldAccess(expr, t.text, False, span=expr.span.to(dot.span))
                else:
                    raise self.fail()
            elif kind == "->":
                self.next()
                t = self.tok
                if t.kind not in WORD_KINDS:
                    raise self.fail()
                self.next()
                expr = ast.FieldAccess(expr, t.text, True, span=expr.span.to(t.span))
            elif kind == "[":
                self.next()
                index = self.expr()
                end = self.expect("]")
                expr = ast.ArrayAccess(expr, index, span=expr.span.to(end.span))
            elif kind in ("++", "--") and isinstance(expr, (ast.Map, ast.Variable)):
                t = self.next()
                expr = ast.Unop(kind, expr, True, span=expr.span.to(t.span))
            else:
                return expr

    def args(self, close: str) -> tuple[tuple[ast.Expr, ...], Token]:
        """``expr, expr, ...`` up to ``close`` (already past the opener)."""
        items = [self.expr()]
        while self.tok.kind == ",":
            self.next()
            items.append(self.expr())
        if self.tok.kind != close:
            raise self.fail(close, '","')
        return tuple(items), self.next()

    def primary(self) -> ast.Expr:
        tok = self.tok
        kind = tok.kind
        if kind == "INT":
            self.next()
            unit = self.tok
            # (`5us` reaches us as `5u`, an unsigned literal, then `s`)
            name = "us" if tok.text[-1] in "uU" and unit.text == "s" else unit.text
            if (self.modern and unit.kind == "IDENT" and name in DURATION_UNITS
                    and unit.span.line == tok.span.line and unit.start == tok.start + len(tok.text)):
                self.next()  # `100ms`: a duration, in nanoseconds
                return ast.Integer(tok.value * DURATION_UNITS[name], span=tok.span.to(unit.span))
            return ast.Integer(tok.value, span=tok.span)
        if kind == "STRING":
            self.next()
            return ast.String(tok.value, span=tok.span)
        if kind == "{" and self.modern:
            return self.block_expr()
        if kind == "BUILTIN":
            self.next()
            if self.tok.kind == "(":
                if self.modern and self.peek().kind == ")":  # `comm()`: the builtin, called
                    self.next()
                    end = self.next()
                    return ast.Builtin(tok.text, span=tok.span.to(end.span))
                raise _SyntaxError(Message(f"Unknown function: {tok.text}", tok.span))
            return ast.Builtin(tok.text, span=tok.span)
        if kind == "STACK_MODE":
            self.next()
            return ast.StackMode(tok.text, span=tok.span)
        if kind == "PARAM":
            return self.param(self.next())
        if kind == "PARAMCOUNT":
            self.next()
            return ast.ParamCount(span=tok.span)
        if kind == "VAR":
            self.next()
            return ast.Variable(tok.text, span=tok.span)
        if kind == "MAP":
            self.next()
            if self.tok.kind == "[":
                self.next()
                keys, end = self.args("]")
                return ast.Map(tok.text, keys, True, span=tok.span.to(end.span))
            return ast.Map(tok.text, span=tok.span)
        if kind == "CALL_BUILTIN":
            self.next()
            if self.tok.kind != "(":
                return ast.Builtin(tok.text, span=tok.span)
            return self.call_rest(tok)
        if kind == "CALL":
            self.next()
            if not self.modern and tok.text in MODERN_FUNCTIONS:
                if self.tok.kind == "(":  # 0.17 has no such function: its parser's error
                    raise _SyntaxError(Message(f"Unknown function: {tok.text}", tok.span))
                return ast.Identifier(tok.text, span=tok.span)
            if self.tok.kind != "(":
                raise self.fail("++", "--")
            if tok.text == "sizeof":
                return self.sizeof_rest(tok)
            if tok.text == "offsetof":
                return self.offsetof_rest(tok)
            return self.call_rest(tok)
        if kind == "IDENT":
            self.next()
            if self.modern:
                modern = self.modern_word(tok)
                if modern is not None:
                    return modern
                if self.tok.kind == "(":  # a macro's call (macros.py), or an unknown function
                    self.next()
                    args, end = ((), self.next()) if self.tok.kind == ")" else self.args(")")
                    return ast.MacroCall(tok.text, args, span=tok.span.to(end.span), name_span=tok.span)
            if self.tok.kind == "(":
                raise _SyntaxError(Message(f"Unknown function: {tok.text}", tok.span))
            return ast.Identifier(tok.text, span=tok.span)
        if kind == "(":
            self.next()
            if self.modern and self.tok.kind == ")":  # `()`: today's empty tuple, of type none
                return ast.Tuple((), span=tok.span.to(self.next().span))
            if self.modern and self.tok.kind in WORD_KINDS and self.peek().kind == "=":
                return self.record_rest(tok)
            first = self.expr()
            if self.modern and self.tok.kind == "," and self.peek().kind == ")":  # `(7,)`
                self.next()
                return ast.Tuple((first,), span=tok.span.to(self.next().span))
            if self.tok.kind == ",":
                self.next()
                rest, end = self.args(")")
                return ast.Tuple((first,) + rest, span=tok.span.to(end.span))
            if self.tok.kind != ")":
                raise self.fail(")", '","')
            self.next()
            return first
        raise self.fail()

    def block_expr(self) -> ast.BlockExpr:
        """``{ stmt; ...; expr }`` in an expression (today's language): its value is the last
        expression's, which has no ``;`` after it."""
        start = self.next()
        stmts, value = self.block_items(start)
        if value is None:
            raise self.fail(tok=self.toks[self.i - 1])
        return ast.BlockExpr(stmts, value, span=start.span.to(self.toks[self.i - 1].span))

    def block_items(self, start: Token) -> tuple[tuple[ast.Stmt, ...], ast.Expr | None]:
        """After ``{``, up to and past its ``}``: the statements, and the value when the last
        is an expression without ``;`` after it (block expressions, macro bodies)."""
        stmts: list[ast.Stmt] = []
        while True:
            kind = self.tok.kind
            if kind == "}":
                self.next()
                return tuple(stmts), None
            if kind in BLOCK_STMTS or kind == "for":
                stmts.append(self.block_stmt())
                continue
            if kind not in EXPR_START and kind not in JUMPS:
                raise self.fail()
            stmt = self.stmt()
            if self.tok.kind == "}" and isinstance(stmt, ast.ExprStmt):
                self.next()
                return tuple(stmts), stmt.expr
            if self.tok.kind == "}":
                self.next()
                return (*stmts, stmt), None
            if self.tok.kind != ";":
                raise self.fail(";")
            self.next()
            stmts.append(stmt)

    def record_rest(self, open_tok: Token) -> ast.Record:
        """After ``(``, at ``name =``: a record ``(name = expr, ...)`` (today's language)."""
        names: list[str] = []
        elems: list[ast.Expr] = []
        while True:
            if self.tok.kind not in WORD_KINDS:
                raise self.fail()
            name = self.next()
            if name.text in names:
                raise _SyntaxError(Message(f"Duplicate field name in record: {name.text}", name.span))
            self.expect("=")
            names.append(name.text)
            elems.append(self.expr())
            if self.tok.kind != ",":
                break
            self.next()
        if self.tok.kind != ")":
            raise self.fail(")", '","')
        end = self.next()
        return ast.Record(tuple(names), tuple(elems), span=open_tok.span.to(end.span))

    def modern_word(self, tok: Token) -> ast.Expr | None:
        """Words today's language gives a meaning 0.17 does not have (None: not one of them):
        ``true``/``false`` (0.17: the kernel's enumerators), and builtins that stand for a
        longer expression (``ppid`` is ``curtask->real_parent->tgid``), also when called."""
        if tok.text in ("true", "false"):
            return ast.Boolean(tok.text == "true", span=tok.span)
        if tok.text not in LOWERED_BUILTINS:
            return None
        span = tok.span
        if self.tok.kind == "(" and self.peek().kind == ")":
            self.next()
            span = span.to(self.next().span)
        base, chain = LOWERED_BUILTINS[tok.text]
        expr: ast.Expr = ast.Builtin(base, span=span)
        for name in chain:
            expr = ast.FieldAccess(expr, name, True, span=span)
        return expr

    def param(self, tok: Token) -> ast.PositionalParam:
        error = param_range_error(tok.text)
        if error:  # $0, or an N over a C long: bison's YYERROR ends the parse here
            raise _SyntaxError(Message(error, tok.span))
        return ast.PositionalParam(tok.value, span=tok.span)

    def call_rest(self, name: Token) -> ast.Call:
        self.next()  # (
        if self.tok.kind == ")":
            end = self.next()
            return ast.Call(name.text, (), span=name.span.to(end.span))
        args, end = self.args(")")
        if self.modern and name.text in ("delete", "has_key") and len(args) == 2:
            args = (_index_map(args[0], args[1]),)
        elif self.modern and name.text == "find" and len(args) == 3:
            args = (_index_map(args[0], args[1]), *args[1:])  # the key stays, for arity and spans
        return ast.Call(name.text, args, span=name.span.to(end.span))

    def sizeof_rest(self, name: Token) -> ast.Sizeof:
        self.next()  # (
        t = self.tok
        if t.kind == "STRUCT_TYPE" or (t.kind == "IDENT" and self.peek().kind == ")"):
            self.next()
            end = self.expect(")")
            if t.kind == "STRUCT_TYPE":  # bpftrace's span stops at the type name
                return ast.Sizeof(t.value, None, span=name.span.to(t.span))
            return ast.Sizeof(t.text, None, span=t.span)  # bpftrace points at the name alone
        expr = self.expr()
        if self.tok.kind != ")":
            raise self.fail(")", '","')
        end = self.next()
        return ast.Sizeof(None, expr, span=name.span.to(end.span))

    def offsetof_rest(self, name: Token) -> ast.Offsetof:
        """After ``offsetof``: ``(struct T, field[.field...])`` (today's language)."""
        self.next()  # (
        t = self.tok
        if t.kind not in ("STRUCT_TYPE", "IDENT"):
            raise self.fail()
        self.next()
        self.expect(",", '","')
        fields = []
        while True:
            f = self.tok
            if f.kind not in WORD_KINDS:
                raise self.fail()
            fields.append(self.next().text)
            if self.tok.kind != ".":
                break
            self.next()
        end = self.expect(")")
        type_name = t.value if t.kind == "STRUCT_TYPE" else t.text
        return ast.Offsetof(type_name, tuple(fields), span=name.span.to(end.span))


def _index_map(target: ast.Expr, key: ast.Expr) -> ast.Expr:
    """``delete(@m, k)``/``has_key(@m, k)`` (bpftrace 0.22+), ``find(@m, k, $v)`` (0.25) as the form on
    ``@m[k]`` the rest of the compiler knows; a tuple literal key is the map's several keys."""
    if not isinstance(target, ast.Map) or target.indexed:
        return target  # semantic analysis reports it
    keys = key.elems if isinstance(key, ast.Tuple) else (key,)
    return ast.Map(target.name, tuple(keys), True, span=target.span.to(key.span))


def read_program(text: str, filename: str = "stdin",
                 include_dirs: tuple[str, ...] = DEFAULT_INCLUDE_DIRS, includes: tuple[str, ...] = (),
                 compat: str | None = None, library: bool = False) -> tuple[ast.Program, dict[str, Macro]]:
    """The grammar alone: (program, macro definitions), with imports and macro calls as written
    and attach points unchecked (the formatter prints this; ``parse`` runs the passes after it).
    ``library``: an imported file, which may hold macros or map declarations and no probe.
    Raises Diagnostic on any error."""
    macros = {}
    if include_dirs and ("#" in text or includes):
        try:
            macros = header_macros(text, include_dirs, includes)
        except HeaderNotFound as err:
            raise Diagnostic([Verbatim(str(err))]) from None
    tokens, lex_errors = tokenize(text, macros)
    if tokens[-1].value == "abort":
        raise Diagnostic(lex_errors, source=text, filename=filename)
    try:
        parser = Parser(tokens, compat, library)
        program = parser.program()
    except _SyntaxError as err:
        raise Diagnostic(lex_errors + [err.message], source=text, filename=filename) from None
    except RecursionError:
        raise Diagnostic(lex_errors + [Message("program too deeply nested", None)],
                         source=text, filename=filename) from None
    if lex_errors:
        raise Diagnostic(lex_errors, source=text, filename=filename)
    return program, parser.macros


def parse(text: str, filename: str = "stdin",
          include_dirs: tuple[str, ...] = DEFAULT_INCLUDE_DIRS, includes: tuple[str, ...] = (),
          params: tuple[str, ...] = (), compat: str | None = None) -> ast.Program:
    """Parse a whole bpftrace script; raises Diagnostic on any error.

    ``compat`` is the language (``compat.py``; None: the default): today's accepts the
    syntax bpftrace added after 0.17, lowered here where the rest of the compiler already
    has a form for it (``delete(@m, k)`` is ``delete(@m[k])``, ``ppid`` a field chain).

    Names ``#define``d in the script, or in headers it ``#include``s or
    ``includes`` names (``--include``), looked up in ``include_dirs`` (pass
    ``()`` to read no files), are expanded. ``params`` (the positional
    parameters) give ``$N`` in attach points its value.

    The passes after the grammar, in order: imports (imports.py: the imported files merged
    in; an imported header's ``#define``s mean reading the script again with them), macro
    expansion (macros.py), and the attach points' kinds and parts.
    """
    program, macros = read_program(text, filename, include_dirs, includes, compat)
    if is_modern(compat):
        from . import imports

        def read(sub_text: str, name: str):
            return read_program(sub_text, name, include_dirs, (), compat, library=True)

        program, macros, headers = imports.resolve(program, macros, filename, text, read)
        if headers and include_dirs:
            program, macros = read_program(text, filename, include_dirs, tuple(includes) + tuple(headers),
                                           compat)
            program, macros, _ = imports.resolve(program, macros, filename, text, read)
        try:
            program = expand_macros(program, macros)
        except Diagnostic as d:
            raise Diagnostic(d.messages, source=text, filename=filename) from None
    try:
        return check_attach_points(program, tuple(params), compat)
    except Diagnostic as d:
        raise Diagnostic(d.messages, source=text, filename=filename) from None
