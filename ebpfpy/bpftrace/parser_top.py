"""The top level of a bpftrace script: ``config``, ``import``, macros, map declarations and
probes with their attach points; and the check of attach points after parsing.

Split from parser.py (statements and expressions) so each grammar stays readable on its own:
``TopLevel`` is a mixin of ``parser.Parser``, which supplies the token helpers (``tok``,
``next``, ``expect``, ``fail``) and the statement grammar (``block``, ``block_items``, ``expr``)
these rules call. Nothing here imports parser.py.
"""
from __future__ import annotations

import re

from . import ast
from .compat import is_modern
from .diagnostics import Diagnostic, Message, Span
from .lexer import Token
from .macros import Macro
from .probes import KINDS as PROBE_SPELLINGS
from .probes import parse_spec, split_parts

# Words that may name a field, a record member or a config key: identifiers and the words the
# lexer gives a kind of their own.
WORD_KINDS = ("IDENT", "BUILTIN", "CALL", "CALL_BUILTIN", "STACK_MODE",
              "if", "else", "unroll", "while", "break", "continue", "return", "for")
# `import "path"` as the lexer hands it over: one attach-point word (group 1: the quoted name)
_IMPORT = re.compile(r'import(?:\s+"((?:[^"\\]|\\.)*)"|\s*$|\s+[^"])')


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


class _SyntaxError(Exception):
    def __init__(self, message: Message):
        self.message = message


class TopLevel:
    """The rules above a probe's body (a mixin of ``parser.Parser``)."""

    toks: list[Token]
    modern: bool
    library: bool  # an imported file: no probe needed
    macros: dict[str, Macro]

    def program(self) -> ast.Program:
        defs: list[str] = []
        while self.tok.kind in ("CPREPROC", "STRUCT_DEF"):
            defs.append(self.next().text)
        config: tuple[ast.ConfigEntry, ...] = ()
        if self._at_config():
            config = self.config_block()
        imports: list[ast.Import] = []
        while self.modern and self._at_import():
            imports.append(self.import_stmt())
        probes = []
        decls: list[ast.MapDecl] = []
        # a script needs a probe; an imported file may hold definitions alone (a library of macros)
        while self.tok.kind != "EOF" or not (probes or (self.library and (imports or decls or self.macros))):
            if self._at_config():
                raise _SyntaxError(Message("syntax: config must appear before probes and functions",
                                           self.tok.span))
            if self.modern and self._at_import():
                raise _SyntaxError(Message("syntax: imports must appear before probes, macros and map "
                                           "declarations", self.tok.span))
            if self.modern and self.tok.kind == "ATTACH" and self.tok.value == "let" and self.peek().kind == "MAP":
                decls.append(self.map_decl())
                continue
            if self.modern and self.tok.kind == "ATTACH" and self.tok.text.split()[0] == "macro":
                self.macro_def()
                continue
            probes.append(self.probe())
        return ast.Program(tuple(defs), tuple(probes), config, tuple(decls), tuple(imports),
                           span=self.toks[0].span)

    def _at_import(self) -> bool:
        return self.tok.kind == "ATTACH" and _IMPORT.match(self.tok.text) is not None

    def import_stmt(self) -> ast.Import:
        """``import "path";`` (today's language; the lexer reads ``import "path"`` as one word
        there). Only the name is kept: imports.py finds and reads the file."""
        head = self.next()
        m = _IMPORT.match(head.text)
        if m.group(1) is None:
            raise _SyntaxError(Message("syntax: expected string after 'import'", head.span))
        end = self.expect(";", "';'")
        return ast.Import(_unquote(m.group(1)), span=head.span.to(end.span))

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


def check_attach_points(program: ast.Program, params: tuple[str, ...] = (),
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
    return ast.Program(program.c_definitions, tuple(probes), program.config, program.map_decls,
                       program.imports, span=program.span)
