"""Tokens of the bpftrace 0.17 language.

The lexer has three modes because bpftrace's lexical rules differ by place:
the *header* (top level: ``#include`` lines, struct definitions, attach points
such as ``uprobe:/bin/bash:readline`` whose ``/`` and ``*`` are not
operators), the *predicate* (an expression ended by a ``/`` that is followed
by ``{``), and the *body* (inside braces).  It tracks brace depth itself, as
bpftrace's flex lexer does, so the parser sees one flat token list.

Spans reproduce bpftrace's locations: a token starts where the last run of
whitespace (or a comment) ended.  ``Token.start`` keeps the real start column
for tools that want it.

Lexical errors (bad escapes, unterminated strings, invalid characters,
out-of-range integers) are collected, not raised: bpftrace drops the token,
keeps going and then usually reports a syntax error too.
"""
from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass

from .diagnostics import Message, Span
from .functions import CALL_NAMES, CALLABLE_BUILTINS, is_builtin_word

# Token kinds, with the names bison prints in "unexpected X" messages.
KIND_NAMES: dict[str, str] = {
    "IDENT": "identifier",
    "INT": "integer",
    "STRING": "string",
    "MAP": "map",
    "VAR": "variable",
    "BUILTIN": "builtin",
    "CALL": "call",
    "CALL_BUILTIN": "call_builtin",
    "STACK_MODE": "stack_mode",
    "PARAM": "positional parameter",
    "PARAMCOUNT": "$#",
    "CPREPROC": "preprocessor directive",
    "STRUCT_DEF": "struct definition",
    "STRUCT_TYPE": "struct",
    "ATTACH": "attach point",
    "PATH": "path",
    "ENDPRED": "end predicate",
    "EOF": "end of file",
}

KEYWORDS = ("if", "else", "unroll", "while", "break", "continue", "return", "for")

STACK_MODES = frozenset(("bpftrace", "perf"))

# Longest first, so "<<=" wins over "<<" and "<".
OPERATORS = sorted([
    "<<=", ">>=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "++", "--", "->", "<<", ">>", "==", "!=",
    "<=", ">=", "&&", "||", "=", "<", ">", "+", "-", "*", "/", "%", "&", "|", "^", "!", "~", "?", ":", ".",
    ",", ";", "(", ")", "[", "]", "{", "}",
], key=len, reverse=True)

_IDENT = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
_DEC = r"[0-9](?:[0-9_]*[0-9])?"
_NUMBER = re.compile(rf"0[xX][0-9a-fA-F]+|(?P<coef>{_DEC})(?:[eE](?P<exp>{_DEC}))?(?P<sfx>[uU]?[lL]{{0,2}})")
_ENDPRED = re.compile(r"/[ \t\n\r]*[/{]")
_STRUCT_CAST = re.compile(r"(struct|union|enum)([ \t]+)([_a-zA-Z][_a-zA-Z0-9]*)(?=[ \t]*[*)])")
# today's offsetof(struct T, field): the type is followed by a comma
_OFFSETOF_TYPE = re.compile(r"(struct|union)([ \t]+)([_a-zA-Z][_a-zA-Z0-9]*)(?=[ \t]*,)")
_AFTER_OFFSETOF = re.compile(r"offsetof[ \t]*\([ \t]*$")
# What may start an attach point: the first character of one of the tokens below.
_ATTACH_START = re.compile(r"[_a-zA-Z0-9*\".+\[\]:$]")
# 0.17's {path} token: ':' then path characters or backslash escapes (in attach points and
# bodies alike, so "1 ? 2 :3" has a path where the ':' should be)
_PATH = re.compile(r":(?:\\.|[_\-./a-zA-Z0-9#*])+")
_SPACE_OR_COMMENT = re.compile(r"(?:[ \t\r\n]+|//[^\n]*|/\*(?:[^*]|\*(?!/))*\*/)*")
_DEFINE = re.compile(r"#[ \t]*define[ \t]+([_a-zA-Z][_a-zA-Z0-9]*)(?![(_a-zA-Z0-9])[ \t]*(.*)$")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "0": "\0"}
U64 = 1 << 64


@dataclass(frozen=True)
class Token:
    """One token; ``value`` is the decoded payload (int, str) when there is one."""

    kind: str          # IDENT, INT, ..., or the operator/keyword text itself
    text: str          # the source text
    span: Span         # bpftrace-style span (starts after the last whitespace)
    value: object = None
    start: int = 0     # the real 1-based start column

    @property
    def display(self) -> str:
        """How bison names this token in 'unexpected X'."""
        if self.kind in KIND_NAMES:
            return KIND_NAMES[self.kind]
        if self.kind == ",":
            return '","'
        return self.kind


class _Lexer:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0
        self.line = 1
        self.col = 1
        self.step_line = 1
        self.step_col = 1
        self.tokens: list[Token] = []
        self.errors: list[Message] = []
        self.mode = "header"
        self.depth = 0
        self.last_end = (1, 1)
        self.macros: dict[str, str] = {}
        self.expanding: frozenset[str] = frozenset()
        self.aborted = False  # an error that ends bpftrace's parse at once (its EOF says "abort")

    # -- positions -------------------------------------------------------
    def _advance(self, n: int) -> None:
        chunk = self.text[self.pos:self.pos + n]
        nl = chunk.count("\n")
        if nl:
            self.line += nl
            self.col = len(chunk) - chunk.rfind("\n")
        else:
            self.col += n
        self.pos += n

    def _step(self) -> None:
        self.step_line, self.step_col = self.line, self.col

    def _span(self) -> Span:
        end_line = 0 if self.line == self.step_line else self.line
        return Span(self.step_line, self.step_col, self.col, end_line)

    def _emit(self, kind: str, n: int, value: object = None) -> Token:
        start = self.col
        text = self.text[self.pos:self.pos + n]
        self._advance(n)
        tok = Token(kind, text, self._span(), value, start)
        self.tokens.append(tok)
        self.last_end = (self.line, self.col)
        return tok

    def _error(self, msg: str, n: int) -> None:
        """Consume n chars and record an error at the accumulated span."""
        self._advance(n)
        self.errors.append(Message(msg, self._span()))

    # -- main loop -------------------------------------------------------
    def run(self) -> list[Token]:
        text = self.text
        if text.startswith("#!"):
            end = text.find("\n")
            self._advance(len(text) if end < 0 else end)
            self._step()
        while self.pos < len(text):
            c = text[self.pos]
            if c in " \t\r\n":
                n = len(text) - self.pos - len(text[self.pos:].lstrip(" \t\r\n"))
                self._advance(n)
                self._step()
            elif text.startswith("//", self.pos):
                end = text.find("\n", self.pos)
                self._advance((len(text) if end < 0 else end) - self.pos)
            elif text.startswith("/*", self.pos):
                end = text.find("*/", self.pos + 2)
                if end < 0:
                    self._error("end of file during comment", len(text) - self.pos)
                else:
                    self._advance(end + 2 - self.pos)
                    self._step()
            elif self.mode == "header":
                self._header(c)
            else:
                self._body(c)
        self.tokens.append(Token("EOF", "", self._span(), "abort" if self.aborted else None, self.col))
        return self.tokens

    def _header(self, c: str) -> None:
        text = self.text
        if c == "#":
            end = text.find("\n", self.pos)
            tok = self._emit("CPREPROC", (len(text) if end < 0 else end) - self.pos)
            m = _DEFINE.match(tok.text)
            if m:
                self.macros[m.group(1)] = m.group(2) or ""
        elif _IDENT.match(text, self.pos) and \
                _IDENT.match(text, self.pos).group() in ("struct", "union", "enum"):
            self._struct_def()
        elif c == "{":
            self._emit("{", 1)
            self.mode, self.depth = "body", 1
        elif c == "/":
            self._emit("/", 1)
            self.mode = "pred"
        elif c == ",":
            self._emit(",", 1)
        elif _ATTACH_START.match(c):
            self._attach_point()
        else:
            self._body(c)

    def _struct_def(self) -> None:
        """``struct X { ... }``: raw text through the balancing brace."""
        text = self.text
        brace = text.find("{", self.pos)
        semi = text.find(";", self.pos)
        if self.mode != "header" and brace < 0:
            self._advance(len(text) - self.pos)
            return
        if brace < 0 or (0 <= semi < brace):
            end = len(text) if semi < 0 else semi + 1
            self._emit("STRUCT_DEF", end - self.pos, text[self.pos:end])
            return
        depth, i = 0, brace
        while i < len(text):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        if i >= len(text):  # unbalanced: bpftrace's STRUCT state eats to EOF
            self._advance(len(text) - self.pos)
            return
        tok = self._emit("STRUCT_DEF", i + 1 - self.pos)
        object.__setattr__(tok, "value", tok.text)
        semi = re.compile(r"[ \t\r\n]*;").match(text, self.pos)
        if semi:  # "struct X { ... };" as in C
            self._advance(semi.end() - self.pos)
        self._step()

    def _attach_point(self) -> None:
        """One attach point, made as bpftrace 0.17's grammar makes it from tokens.

        Its ``attach_point_def`` rule concatenates identifiers (builtin and call
        names too), paths (``:`` and path characters: ``:./prog``, ``:/bin/bash``,
        ``:sys_enter_*``), lone ``:``, "strings" (kept quoted), integers (in decimal:
        ``f+0x10`` is ``f+16``), ``. + * [ ]`` and ``$N``, with any whitespace or
        comment between them dropped (``k : f`` is ``kprobe:f``). The first other
        token ends it. The token's ``text`` is the source, its ``value`` what
        bpftrace builds; its span starts where the previous token ended.
        """
        text = self.text
        i, end = self.pos, None
        raw: list[str] = []
        abort = False
        while i < len(text):
            j = _SPACE_OR_COMMENT.match(text, i).end() if end is not None else i
            taken = self._attach_piece(j)
            if taken is None and end is not None and j < len(text) and _invalid_char(text, j):
                # bpftrace reports the character, drops it and goes on with the attach point
                line, col = self._line_col(j + 1)
                self.errors.append(Message(f"invalid character '{text[j]}'",
                                           Span(self.step_line, self.step_col, col,
                                                0 if line == self.step_line else line)))
                i = end = j + 1
                continue
            if taken is None:
                break
            n, piece = taken
            raw.append(piece)
            i = end = j + n
            abort = _attach_param_error(piece)
            if abort:
                break
        if end is None:
            self._body(text[self.pos])
            return
        step = self.step_line, self.step_col
        self.step_line, self.step_col = self.last_end
        tok = self._emit("ATTACH", end - self.pos, "".join(raw))
        self.step_line, self.step_col = step  # later tokens start where the whitespace ended
        if abort:
            # bison's YYERROR on "$#" or "$0": this error alone ends the parse
            self.errors.append(Message(abort, tok.span))
            self.pos = len(text)
            self.aborted = True

    def _line_col(self, i: int) -> tuple[int, int]:
        """The line and column of text position ``i`` (at or after ``self.pos``)."""
        chunk = self.text[self.pos:i]
        nl = chunk.count("\n")
        return (self.line + nl, len(chunk) - chunk.rfind("\n")) if nl else (self.line, self.col + len(chunk))

    def _attach_piece(self, i: int) -> tuple[int, str] | None:
        """(length, text for the attach point) of the token at ``i`` if attach_point_def takes it."""
        text = self.text
        if i >= len(text):
            return None
        c = text[i]
        if _IDENT.match(c):
            word = _IDENT.match(text, i).group()
            if word in KEYWORDS or word in ("struct", "union", "enum"):
                return None
            return len(word), word
        if c in "0123456789":
            m = _NUMBER.match(text, i)
            value, error = _number_value(m)
            return None if error else (len(m.group()), str(value))
        if c == ":":
            m = _PATH.match(text, i)
            return (len(m.group()), m.group()) if m else (1, ":")
        if c == '"':
            j = i + 1
            while j < len(text) and text[j] not in '"\n':
                j += 2 if text[j] == "\\" else 1
            if j >= len(text) or text[j] != '"':
                return None  # unterminated: the string lexer reports it
            return j + 1 - i, text[i:j + 1]
        nxt = text[i + 1:i + 2]
        if c in ".[]" or (c == "+" and nxt not in ("+", "=")) or (c == "*" and nxt != "="):
            return 1, c  # not "++", "+=", "*="
        if c == "$":
            m = re.compile(r"\$([0-9]+|#)").match(text, i)
            return (len(m.group()), m.group()) if m else None
        return None

    def _body(self, c: str) -> None:
        text, pos = self.text, self.pos
        if c == '"':
            self._string()
            return
        if c in "0123456789":
            self._number()
            return
        if c == "$":
            m = re.compile(r"\$(#|[0-9]+|[_a-zA-Z][_a-zA-Z0-9]*)?").match(text, pos)
            body = m.group(1)
            if body is None:
                self._error("invalid character '$'", 1)
            elif body == "#":
                self._emit("PARAMCOUNT", 2)
            elif body.isdigit():
                self._emit("PARAM", m.end() - pos, int(body))
            else:
                self._emit("VAR", m.end() - pos, m.group())
            return
        if c == "@":
            m = re.compile(r"@([_a-zA-Z][_a-zA-Z0-9]*)?").match(text, pos)
            self._emit("MAP", m.end() - pos, m.group())
            return
        if c == "#" and self.mode == "body":
            end = text.find("\n", pos)
            self._emit("CPREPROC", (len(text) if end < 0 else end) - pos)
            return
        if _IDENT.match(c):
            self._word()
            return
        if c == ":" and _PATH.match(text, pos):
            self._emit("PATH", _PATH.match(text, pos).end() - pos)
            return
        if c == "/" and self.mode == "pred":
            m = _ENDPRED.match(text, pos)
            if m:
                self._emit("ENDPRED", 1)
                self.mode = "header"
                return
        for op in OPERATORS:
            if text.startswith(op, pos):
                self._emit(op, len(op))
                if op == "{":
                    self.depth += 1
                elif op == "}" and self.mode == "body":
                    self.depth -= 1
                    if self.depth == 0:
                        self.mode = "header"
                return
        self._error(f"invalid character '{c}'", 1)

    def _word(self) -> None:
        text, pos = self.text, self.pos
        m = _STRUCT_CAST.match(text, pos)
        if m is None and _AFTER_OFFSETOF.search(text, max(0, pos - 40), pos):
            m = _OFFSETOF_TYPE.match(text, pos)
        if m:
            # bpftrace 0.17 counts one column too many for a struct type name;
            # its span and every later column on the line are off by one, and so are we.
            start = self.col
            self._advance(m.end() - pos)
            self.col += 1
            self.tokens.append(Token("STRUCT_TYPE", m.group(), self._span(),
                                     f"{m.group(1)} {m.group(3)}", start))
            self.last_end = (self.line, self.col)
            return
        word = _IDENT.match(text, pos).group()
        if word in ("struct", "union", "enum"):
            self._struct_def()
            return
        if word in KEYWORDS:
            kind = word
        elif is_builtin_word(word):
            kind = "BUILTIN"
        elif word in CALLABLE_BUILTINS:  # kstack, ustack: builtins that can also be called
            kind = "CALL_BUILTIN"
        elif word in STACK_MODES:
            kind = "STACK_MODE"
        elif word in CALL_NAMES:  # functions.py's table
            kind = "CALL"
        elif word in self.macros and word not in self.expanding and not (
                self.tokens and self.tokens[-1].kind in (".", "->")):  # not field names
            self._expand(word)
            return
        else:
            kind = "IDENT"
        self._emit(kind, len(word), word)

    def _expand(self, name: str) -> None:
        """Replace an object-like ``#define`` name by its body's tokens.

        The tokens take the name's span, so errors point at the use.
        """
        start = self.col
        self._advance(len(name))
        span = self._span()
        sub = _Lexer(self.macros[name])
        sub.mode, sub.depth = "body", 1
        sub.macros, sub.expanding = self.macros, self.expanding | {name}
        for tok in sub.run()[:-1]:
            self.tokens.append(Token(tok.kind, tok.text, span, tok.value, start))
        self.errors.extend(Message(e.text, span) for e in sub.errors)
        self.last_end = (self.line, self.col)

    def _number(self) -> None:
        m = _NUMBER.match(self.text, self.pos)
        value, error = _number_value(m)
        if error:
            self._error(error, len(m.group()))
            return
        self._emit("INT", len(m.group()), value)

    def _string(self) -> None:
        """A string literal with C escapes (``\\n \\t \\" \\\\ \\xNN \\NNN``).

        A bad escape is reported with the span up to that escape and the
        string goes on, as bpftrace does.
        """
        text, i = self.text, self.pos + 1
        begin, tok_start = self.pos, self.col
        out: list[str] = []
        while True:
            if i >= len(text) or text[i] == "\n":
                self._advance(min(i + 1, len(text)) - self.pos)
                self.errors.append(Message("unterminated string", self._span()))
                return
            ch = text[i]
            if ch == '"':
                break
            if ch != "\\":
                out.append(ch)
                i += 1
                continue
            nxt = text[i + 1:i + 2]
            hexd = re.match(r"[0-9a-fA-F]{1,2}", text[i + 2:i + 4]) if nxt == "x" else None
            if nxt in _ESCAPES and nxt != "0":
                out.append(_ESCAPES[nxt])
                i += 2
            elif hexd:
                out.append(chr(int(hexd.group(), 16)))
                i += 2 + len(hexd.group())
            elif nxt and nxt in "01234567":
                octd = re.match(r"[0-7]{1,3}", text[i + 1:i + 4]).group()
                i += 1 + len(octd)
                if int(octd, 8) > 255:
                    self._advance(i - self.pos)
                    self.errors.append(Message(f"octal escape sequence out of range '\\{octd}'",
                                               self._span()))
                out.append(chr(int(octd, 8) & 0xFF))
            else:
                i += 2
                self._advance(i - self.pos)
                self.errors.append(Message(f"invalid escape character '\\{nxt}'", self._span()))
        self._advance(i + 1 - self.pos)
        tok = Token("STRING", text[begin:self.pos], self._span(),
                    "".join(out), tok_start)
        self.tokens.append(tok)
        self.last_end = (self.line, self.col)


PARAM_MAX = (1 << 63) - 1


def param_range_error(text: str) -> str:
    """bpftrace's error for a ``$N`` token whose N is 0 or over a C long ("" if none)."""
    n = int(text[1:])
    return "" if 1 <= n <= PARAM_MAX else f"param {text} is out of integer range [1, {PARAM_MAX}]"


def _attach_param_error(piece: str) -> str:
    if piece == "$#":
        return "Not a positional parameter"
    return param_range_error(piece) if piece.startswith("$") else ""


def _invalid_char(text: str, i: int) -> bool:
    """Whether no token starts at ``text[i]`` (bpftrace: "invalid character")."""
    c = text[i]
    return not (c in " \t\r\n\"$@#" or _IDENT.match(c) or c in "0123456789"
                or any(op[0] == c for op in OPERATORS))


def _number_value(m: re.Match) -> tuple[int, str]:
    """The value of an integer literal matched by ``_NUMBER``, or bpftrace's error for it."""
    raw = m.group()
    if raw[:2] in ("0x", "0X"):
        value = int(raw, 16)
    else:
        coef = m.group("coef").replace("_", "")
        if m.group("exp") is not None:
            exp = int(m.group("exp").replace("_", ""))
            if len(coef.lstrip("0") or "0") > 1 or int(coef) > 9:
                return 0, f"Coefficient part of scientific literal must be in range (0,9), got: {int(coef)}"
            if exp > 18:  # 1e19 fits in 64 bits, but bpftrace 0.17 refuses it
                return 0, f"Exponent will overflow integer range: {exp}"
            value = int(coef) * 10 ** exp
        elif len(coef) > 1 and coef[0] == "0":
            if not re.fullmatch(r"[0-7]+", coef):
                return 0, "Found trailing non-numeric characters"
            value = int(coef, 8)
        else:
            value = int(coef)
    if value >= U64:
        return 0, "stoull"
    return value, ""


def tokenize(text: str, macros: dict[str, str] | None = None) -> tuple[list[Token], list[Message]]:
    """Split a whole script into tokens (ending with EOF) plus lexical errors.

    ``macros`` predefines object-like macros (e.g. from ``header_macros``);
    the script's own ``#define``s override them.

    bpftrace's lexer reads bytes from a C string: a NUL ends the script, a
    column is a byte, and a byte that starts no token is reported alone
    (``é`` outside a string is two invalid characters). So the script is lexed
    as bytes (one character each), and the texts of tokens and messages are
    turned back into ``str`` (UTF-8, with ``surrogateescape`` for bytes that are
    not: they print as the same bytes).
    """
    text = text.split("\0", 1)[0]
    lx = _Lexer(text if text.isascii() else text.encode("utf-8", "surrogateescape").decode("latin-1"))
    lx.macros.update(macros or {})
    tokens = [t if t.text.isascii() and not (isinstance(t.value, str) and not t.value.isascii()) else
              dataclasses.replace(t, text=_from_bytes(t.text),
                                  value=_from_bytes(t.value) if isinstance(t.value, str) else t.value)
              for t in lx.run()]  # (escapes as "\xff" give bytes too)
    return tokens, [e if e.text.isascii() else dataclasses.replace(e, text=_from_bytes(e.text))
                    for e in lx.errors]


def _from_bytes(text: str) -> str:
    """A string of bytes (one character each) as text: UTF-8, other bytes as surrogates."""
    return text if text.isascii() else text.encode("latin-1").decode("utf-8", "surrogateescape")


# Where bpftrace's clang finds <headers> on Debian.
DEFAULT_INCLUDE_DIRS = ("/usr/local/include", "/usr/include/x86_64-linux-gnu", "/usr/include")
_INCLUDE = re.compile(r'#[ \t]*include[ \t]*([<"])([^>"]+)[>"]')
MAX_HEADERS = 400


class HeaderNotFound(Exception):
    """A header the script (or ``--include``) names is nowhere on the search path.

    ``str()`` is the line bpftrace prints for it (clang's diagnostic: the
    script's preprocessor lines are numbered as bpftrace's ``definitions.h``,
    after one line of its own).
    """


def header_macros(text: str, include_dirs: tuple[str, ...] = DEFAULT_INCLUDE_DIRS,
                  includes: tuple[str, ...] = ()) -> dict[str, str]:
    """Object-like macros of the headers ``text`` includes, and of ``includes`` (``--include``),
    searched in ``include_dirs`` (``-I`` directories first, then the defaults); see ``_header_macros``.

    Raises HeaderNotFound, as clang fails bpftrace, when a ``"quoted"`` or ``--include``d
    header is missing; a missing ``<system>`` header is skipped (BTF gives the types).
    """
    import os

    found = []
    for name in includes:
        path = find_header(name, ("",) + tuple(include_dirs))
        if path is None:
            raise HeaderNotFound(f"fatal error: '{name}' file not found")
        found.append(os.path.abspath(path))
    directives = [line.strip() for line in text.split("\n") if line.strip().startswith("#")]
    for number, line in enumerate(directives, start=2):
        m = _INCLUDE.match(line)
        if not m:
            continue
        # quoted names are looked up in the current directory first, as clang does
        quoted = m.group(1) == '"'
        path = find_header(m.group(2), (("",) if quoted else ()) + tuple(include_dirs))
        if path is None and not quoted:
            # <linux/sched.h> without kernel headers installed: bpftrace's clang fails, but the
            # types such headers are included for come from the kernel's BTF, so go on without it
            continue
        if path is None:
            raise HeaderNotFound(f"definitions.h:{number}:{m.start(1) + 1}: fatal error: "
                                 f"'{m.group(2)}' file not found")
        found.append(os.path.abspath(path))
    return dict(_header_macros(tuple(found), tuple(include_dirs))) if found else {}


def find_header(name: str, include_dirs: tuple[str, ...]):
    """The path of header ``name`` in the first of ``include_dirs`` that has it (``""``: as given), or None."""
    import os

    for d in include_dirs:
        path = os.path.join(d, name) if d else name
        if os.path.isfile(path):
            return path
    return None


@functools.lru_cache(maxsize=32)
def _header_macros(includes: tuple[str, ...], include_dirs: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Object-like macros from the headers a script ``#include``s, transitively.

    bpftrace runs clang's preprocessor; we only need the macros a script can
    name (``AF_INET``), so this reads ``#define NAME body`` lines and follows
    ``#include``s, ignoring ``#if`` (the first definition wins).  Bounded by
    MAX_HEADERS files; unreadable headers are skipped.
    """
    import os

    macros: dict[str, str] = {}
    seen: set[str] = set()
    queue = list(includes)  # absolute paths, or names to look up in include_dirs
    while queue and len(seen) < MAX_HEADERS:
        name = queue.pop(0)
        for d in include_dirs if not os.path.isabs(name) else ("",):
            path = os.path.join(d, name)
            if path in seen or not os.path.isfile(path):
                continue
            seen.add(path)
            try:
                with open(path, encoding="latin-1") as f:
                    body = f.read().replace("\\\n", " ")
            except OSError:
                continue
            for line in body.split("\n"):
                line = line.strip()
                m = _DEFINE.match(line)
                if m:
                    value = re.sub(r"/\*.*?\*/|//.*$", "", m.group(2) or "").strip()
                    macros.setdefault(m.group(1), value)
                inc = _INCLUDE.match(line)
                if inc:
                    # "name" is looked up next to the including header first
                    local = os.path.join(os.path.dirname(path), inc.group(2))
                    queue.append(local if inc.group(1) == '"' and os.path.isfile(local) else inc.group(2))
            break
    return tuple(macros.items())
