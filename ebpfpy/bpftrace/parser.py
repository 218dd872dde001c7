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

import re

from . import ast
from .compat import is_modern
from .diagnostics import Diagnostic, Message, Span, Verbatim
from .functions import MODERN_ONLY
from .lexer import DEFAULT_INCLUDE_DIRS, HeaderNotFound, Token, header_macros, param_range_error, tokenize
from .macros import Macro, expand_macros
from .probes import KINDS as PROBE_SPELLINGS
from .probes import parse_spec, split_parts

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
WORD_KINDS = ("IDENT", "BUILTIN", "CALL", "CALL_BUILTIN", "STACK_MODE",
              "if", "else", "unroll", "while", "break", "continue", "return", "for")
EXPR_START = {"INT", "STRING", "BUILTIN", "CALL", "CALL_BUILTIN", "STACK_MODE", "PARAM",
              "PARAMCOUNT", "VAR", "MAP", "IDENT", "(", "!", "~", "-", "*", "++", "--"}
BLOCK_STMTS = ("if", "unroll", "while")
JUMPS = ("break", "continue", "return")


class _SyntaxError(Exception):
    def __init__(self, message: Message):
        self.message = message


class Parser:
    def __init__(self, tokens: list[Token], compat: str | None = None):
        self.toks = tokens
        self.i = 0
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

    # -- top level -------------------------------------------------------
    def program(self) -> ast.Program:
        defs: list[str] = []
        while self.tok.kind in ("CPREPROC", "STRUCT_DEF"):
            defs.append(self.next().text)
        config: tuple[ast.ConfigEntry, ...] = ()
        if self._at_config():
            config = self.config_block()
        probes = []
        decls: list[ast.MapDecl] = []
        while self.tok.kind != "EOF" or not probes:
            if self._at_config():
                raise _SyntaxError(Message("syntax: config must appear before probes and functions",
                                           self.tok.span))
            if self.modern and self.tok.kind == "ATTACH" and self.tok.value == "let" and self.peek().kind == "MAP":
                decls.append(self.map_decl())
                continue
            if self.modern and self.tok.kind == "ATTACH" and self.tok.text.split()[0] == "macro":
                self.macro_def()
                continue
            probes.append(self.probe())
        return ast.Program(tuple(defs), tuple(probes), config, tuple(decls), span=self.toks[0].span)

    def macro_def(self) -> None:
        """``macro name(x, $v, @m) { stmts; [expr] }`` at the top level (today's language; the
        lexer reads ``macro name`` as one word there). Kept in ``self.macros`` for macros.py."""
        head = self.next()
        words = head.text.split()
        if len(words) != 2 or not re.fullmatch(r"[A-Za-z_]\w*", words[1]):
            raise _SyntaxError(Message("syntax: expected a macro name", head.span))
        name = words[1]
        if name in self.macros:
            raise _SyntaxError(Message(f"Macro '{name}' is defined more than once", head.span))
        self.expect("(")
        params: list[str] = []
        while self.tok.kind != ")":
            p = self.tok
            if p.kind not in ("ATTACH", "VAR", "MAP") or (p.kind == "ATTACH" and not re.fullmatch(r"[A-Za-z_]\w*",
                                                                                                p.text)):
                raise self.fail(")")
            if p.text in params:
                raise _SyntaxError(Message(f"Macro '{name}' has two parameters named {p.text}", p.span))
            params.append(self.next().text)
            if self.tok.kind == ",":
                self.next()
            elif self.tok.kind != ")":
                raise self.fail(")", '","')
        self.next()
        if self.tok.kind != "{":
            raise self.fail("{")
        stmts, value = self.block_items(self.next())
        self.macros[name] = Macro(name, tuple(params), stmts, value, head.span)

    def map_decl(self) -> ast.MapDecl:
        """``let @m = kind(N);`` at the top level (today's language)."""
        let = self.next()
        name = self.next()
        self.expect("=")
        kind = self.tok
        if kind.kind != "ATTACH" or not re.fullmatch(r"[A-Za-z_]\w*", kind.text):
            raise self.fail()
        self.next()
        self.expect("(")
        size = self.tok
        if size.kind != "ATTACH" or not re.fullmatch(r"[0-9]+", size.text) or int(size.text) <= 0:
            raise _SyntaxError(Message("syntax: expected positive integer for map declaration max entries",
                                       Span(kind.span.line, kind.span.col_end - len(kind.text), size.span.col_end)))
        self.next()
        self.expect(")")
        end = self.expect(";")
        return ast.MapDecl(name.text, kind.text, int(size.text), span=let.span.to(end.span))

    def _at_config(self) -> bool:
        return (self.modern and self.tok.kind == "ATTACH" and self.tok.value == "config"
                and self.peek().kind == "=")

    def config_block(self) -> tuple[ast.ConfigEntry, ...]:
        """``config = { key = value; ... }``: integers, "strings" or bare words as values."""
        self.next()
        self.expect("=")
        self.expect("{")
        entries = []
        while self.tok.kind != "}":
            key = self.tok
            if key.kind not in WORD_KINDS:
                raise self.fail("}")
            self.next()
            self.expect("=")
            value = self.tok
            if value.kind in ("INT", "STRING"):
                entries.append(ast.ConfigEntry(key.text, value.value, span=key.span.to(value.span)))
            elif value.kind in WORD_KINDS:
                entries.append(ast.ConfigEntry(key.text, value.text, span=key.span.to(value.span)))
            else:
                raise self.fail()
            self.next()
            if self.tok.kind == ";":
                self.next()
            elif self.tok.kind != "}":
                raise self.fail("}")
        self.next()
        return tuple(entries)

    def probe(self) -> ast.Probe:
        start = self.tok
        aps: list[ast.AttachPoint] = []
        while True:
            if self.tok.kind == "ATTACH":
                tok = self.next()
                aps.append(ast.AttachPoint(tok.value, span=tok.span))
            else:
                # bpftrace's attach point rule may match nothing (",BEGIN", "BEGIN,,END",
                # "{ }"); such a point is dropped later, and a probe left with none is an error
                aps.append(ast.AttachPoint("", span=self.tok.span))
            if self.tok.kind != ",":
                break
            self.next()
        real = [ap for ap in aps if ap.raw]
        if self.tok.kind == "EOF":
            span = real[0].span.to(self.tok.span) if real else self.tok.span
            raise _SyntaxError(Message("unexpected end of file, expected {", span))
        pred, pred_span = None, None
        if self.tok.kind == "/":
            slash = self.next()
            pred = self.expr()
            end = self.expect("ENDPRED", "end predicate")
            pred_span = slash.span.to(end.span)
            if self.tok.kind != "{":
                # bison names what it expected only for a second '/' (a second predicate)
                raise self.fail("{") if self.tok.kind == "/" else self.fail()
        if self.tok.kind != "{":
            raise self.fail("{")
        body = self.block()
        return ast.Probe(tuple(aps), pred, body, span=start.span, pred_span=pred_span or start.span)

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


def _check_attach_points(program: ast.Program, params: tuple[str, ...] = (),
                         compat: str | None = None) -> ast.Program:
    """Resolve each attach point's kind and parts (``$N`` from ``params``); one BEGIN and one END only."""
    errors: list[Message] = []
    probes = []
    for probe in program.probes:
        aps = []
        seen: set[str] = set()
        for ap in probe.attach_points:
            try:
                parts = split_parts(ap.raw, params)
            except ValueError as err:  # "$1b": reported, and the point dropped
                errors.append(Message(str(err), ap.span))
                continue
            if not parts[0]:
                continue  # no probe type (an empty attach point, ":x", unset "$1"): dropped, as in bpftrace
            try:
                spec = parse_spec(ap.raw, ap.span, params, compat)
            except Diagnostic as d:
                errors.extend(d.messages)
                aps.append(ap)
                continue
            if spec.kind in ("BEGIN", "END") and not is_modern(compat):  # 0.25+: several allowed
                if spec.kind in seen:
                    errors.append(Message(f"More than one {spec.kind} probe defined", ap.span))
                seen.add(spec.kind)
            # a time is read as bpftrace reads it (i:s:1e3 is interval:s:1000, also for `probe`)
            raw = ap.raw
            if parts != split_parts(ap.raw):  # with $N's values, for the attach layer
                raw = ":".join(f'"{p}"' if re.search(r'[:\s]', p) else p for p in parts)
            if spec.kind in ("profile", "interval") or split_parts(raw)[0] not in PROBE_SPELLINGS:
                raw = spec.raw  # (and today's spellings, `begin` or `fentry:f`, by the kind's name)
            aps.append(ast.AttachPoint(raw, spec.kind, spec.parts, span=ap.span))
        if not aps:
            # reported after parsing, where bpftrace has no location for it: always 1:1
            errors.append(Message("No attach points for probe", Span(1, 1, 1)))
        probes.append(ast.Probe(tuple(aps), probe.pred, probe.body, span=probe.span,
                                pred_span=probe.pred_span))
    if errors:
        raise Diagnostic(errors)
    return ast.Program(program.c_definitions, tuple(probes), program.config, program.map_decls, span=program.span)


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
    """
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
        parser = Parser(tokens, compat)
        program = parser.program()
        if parser.modern:
            program = expand_macros(program, parser.macros)
    except Diagnostic as d:  # (from macro expansion)
        raise Diagnostic(lex_errors + d.messages, source=text, filename=filename) from None
    except _SyntaxError as err:
        raise Diagnostic(lex_errors + [err.message], source=text, filename=filename) from None
    except RecursionError:
        raise Diagnostic(lex_errors + [Message("program too deeply nested", None)],
                         source=text, filename=filename) from None
    if lex_errors:
        raise Diagnostic(lex_errors, source=text, filename=filename)
    try:
        return _check_attach_points(program, tuple(params), compat)
    except Diagnostic as d:
        raise Diagnostic(d.messages, source=text, filename=filename) from None
