"""Errors and warnings in bpftrace 0.17's exact text form.

bpftrace prints ``stdin:L:C1-C2: ERROR: message``, then the source line, then
a ``~`` underline from C1 to C2 (C2 exclusive, 1-based columns).  Scripts and
tests compare that text byte for byte, so the formatting lives in one place.

Columns follow bpftrace's lexer quirk: a token's span starts where the last
run of whitespace ended, not where the token itself starts (``print(pid)``
reports ``pid`` from the ``p`` of ``print``).  The lexer computes spans that
way; this module only renders them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class Span(NamedTuple):
    """Source range: ``line``, ``col_start`` (1-based), ``col_end`` (exclusive).

    ``end_line`` is the line ``col_end`` refers to when the range crosses lines
    (0 means the same line), so ``span[:3]`` is the ``(line, col_start,
    col_end)`` triple the builder keeps per instruction.
    """

    line: int
    col_start: int
    col_end: int
    end_line: int = 0

    def to(self, other: Span) -> Span:
        """The span from the start of self to the end of other (bison's @$)."""
        end_line = other.end_line or other.line
        return Span(self.line, self.col_start, other.col_end,
                    0 if end_line == self.line else end_line)


NOWHERE = Span(0, 0, 0)


@dataclass(frozen=True)
class Message:
    """One error or warning; ``level`` is ``ERROR`` or ``WARNING``."""

    text: str
    span: Span | None = None
    level: str = "ERROR"

    def format(self, source: str = "", filename: str = "stdin") -> str:
        """Render like bpftrace: header line, source line, underline."""
        if self.span is None or self.span.line == 0:
            return f"{self.level}: {self.text}\n"
        span = self.span
        lines = source.split("\n")
        if span.end_line and span.end_line != span.line:
            head = f"{filename}:{span.line}-{span.end_line}: {self.level}: {self.text}\n"
            return head
        head = f"{filename}:{span.line}:{span.col_start}-{span.col_end}: {self.level}: {self.text}\n"
        src = lines[span.line - 1] if 0 < span.line <= len(lines) else ""
        src = src.rstrip("\r")
        raw = src.encode("utf-8", "surrogateescape")  # columns count bytes
        end = min(span.col_end, len(raw) + 1)
        # bpftrace prints each tab as four spaces, and widens the underline to match
        before, under = raw[:span.col_start - 1], raw[span.col_start - 1:max(end, span.col_start) - 1]
        indent = " " * (len(before) + 3 * before.count(b"\t"))
        tildes = "~" * (len(under) + 3 * under.count(b"\t"))
        return f"{head}{src.replace(chr(9), '    ')}\n{indent}{tildes}\n"


@dataclass(frozen=True)
class Verbatim(Message):
    """A message bpftrace prints as it is, without ``ERROR:`` or a source line (clang's
    ``definitions.h:2:10: fatal error: ...`` for a missing header)."""

    def format(self, source: str = "", filename: str = "stdin") -> str:
        return self.text + "\n"


@dataclass(frozen=True)
class Elsewhere(Message):
    """A message about another file than the one being compiled (a file the script imports):
    it renders with that file's text and name, whatever the caller passes."""

    in_source: str = ""
    in_file: str = ""

    def format(self, source: str = "", filename: str = "stdin") -> str:
        return Message.format(self, self.in_source, self.in_file)


def located(messages, source: str, filename: str) -> list[Message]:
    """``messages`` pinned to ``source``/``filename`` (Verbatim and Elsewhere ones stay as they are)."""
    return [m if isinstance(m, (Verbatim, Elsewhere)) else Elsewhere(m.text, m.span, m.level, source, filename)
            for m in messages]


class Diagnostic(Exception):
    """Compilation failed; carries every message collected so far, in order.

    One exception type for the whole front end: the lexer, the parser, probe
    spec parsing and semantic analysis all raise it, and the CLI prints
    ``format()`` to stderr and exits 1, with no traceback.
    """

    def __init__(self, messages: list[Message] | Message | str, span: Span | None = None,
                 source: str = "", filename: str = "stdin"):
        if isinstance(messages, str):
            messages = [Message(messages, span)]
        elif isinstance(messages, Message):
            messages = [messages]
        self.messages = list(messages)
        self.source = source
        self.filename = filename
        super().__init__(self.messages[0].text if self.messages else "error")

    @property
    def message(self) -> str:
        return self.messages[0].text

    @property
    def span(self) -> Span | None:
        return self.messages[0].span

    def format(self, source: str | None = None, filename: str | None = None) -> str:
        src = self.source if source is None else source
        name = self.filename if filename is None else filename
        return "".join(m.format(src, name) for m in self.messages)


@dataclass
class Reporter:
    """Collects messages so a pass can report several errors before failing."""

    source: str = ""
    filename: str = "stdin"
    messages: list[Message] = field(default_factory=list)

    def error(self, text: str, span: Span | None) -> None:
        self.messages.append(Message(text, span, "ERROR"))

    def warning(self, text: str, span: Span | None) -> None:
        self.messages.append(Message(text, span, "WARNING"))

    @property
    def errors(self) -> list[Message]:
        return [m for m in self.messages if m.level == "ERROR"]

    @property
    def warnings(self) -> list[Message]:
        return [m for m in self.messages if m.level == "WARNING"]

    def fail(self, text: str | None = None, span: Span | None = None) -> Diagnostic:
        """Build the exception holding every message so far (plus ``text``)."""
        if text is not None:
            self.error(text, span)
        return Diagnostic(list(self.messages), source=self.source, filename=self.filename)

    def check(self) -> None:
        """Raise if any error was reported."""
        if self.errors:
            raise self.fail()

    def format_warnings(self) -> str:
        return "".join(m.format(self.source, self.filename) for m in self.warnings)
