"""The two output formats behind one interface, so the runtime never asks which one it has.

``TextWriter`` and ``JsonWriter`` take the same calls in the same order; each
knows only how its format spells them. The stream is flushed after every
record by default (``-B line``, bpftrace's default), so piping the output
shows events as they happen; ``-B full`` leaves flushing to the stream's own
buffer (and to exit), ``-B none`` also flushes inside records.

``modern=True`` writes bpftrace 0.26's output (``compat.is_modern``): the text
writer's ``Attached N probes`` goes to ``diagnostics`` (stderr), the two blank
lines at exit go into the output stream (the ``-o`` file too), and JSON has none.
"""
from __future__ import annotations

import sys
from typing import Any, TextIO

from .. import helper_errors
from . import jsonfmt, text
from .values import MapData


class Writer:
    def __init__(self, stream: TextIO, buffering: str = "line", modern: bool = False):
        self.stream = stream
        self.buffering = buffering
        self.modern = modern
        self._flush = buffering != "full"
        # bpftrace 0.17 writes the two blank lines before exit-time maps to
        # stdout even under ``-o FILE``; the driver points this at stdout then.
        self.separator_stream: TextIO | None = None
        # where 0.26 writes what is not the program's output (``Attached N probes``); None: sys.stderr
        self.diagnostics: TextIO | None = None

    def _emit(self, chunk: str) -> None:
        if chunk:
            self.stream.write(chunk)
            if self._flush:
                self.stream.flush()

    def begin_batch(self) -> None:
        """Records delivered together (one ring read) are flushed together, once, by ``end_batch``.

        Under ``-B line`` a reader still sees each batch as soon as it was
        read from the kernel; ``-B none`` keeps one flush per record.
        """
        if self.buffering == "line":
            self._flush = False

    def end_batch(self) -> None:
        if self.buffering == "line":
            self._flush = True
            self.stream.flush()

    def exit_separator(self) -> None:
        """The two blank lines bpftrace prints before the maps at exit (0.17: in JSON mode too)."""
        if self.modern and self.fmt == "json":
            return
        out = self.separator_stream or self.stream
        out.write("\n\n")
        if self._flush or out is not self.stream:
            out.flush()

    def _diagnose(self, chunk: str) -> None:
        """What 0.26 says on stderr rather than in the output."""
        out = self.diagnostics or sys.stderr
        out.write(chunk)
        out.flush()

    def close(self) -> None:
        self.stream.flush()


class TextWriter(Writer):
    fmt = "text"

    def attached(self, count: int) -> None:
        if self.modern:
            self._diagnose(text.format_attached(count, modern=True))
            return
        self._emit(text.format_attached(count))

    def printf(self, rendered: str) -> None:
        self._emit(rendered)

    def value(self, value: Any) -> None:
        self._emit(text.format_value(value, self.modern) + "\n")

    def raw(self, kind: str, rendered: str) -> None:
        """Output of time(), cat(), system(), join(): already text."""
        self._emit(rendered)

    def map(self, data: MapData, top: int = 0, div: int = 1) -> None:
        self._emit(text.format_map(data, top, div, self.modern))

    def lost(self, count: int) -> None:
        self._emit(text.format_lost(count))

    def runtime_message(self, kind: str, msg: str, filename: str, span) -> None:
        """errorf()/warnf() (today's language): ``FILE:L:C1-C2: ERROR: msg`` on stderr."""
        level = "ERROR" if kind == "errorf" else "WARNING"
        out = self.diagnostics or sys.stderr
        out.write(f"{filename}:{span[0]}:{span[1]}-{span[2]}: {level}: {msg}\n")
        out.flush()

    def helper_error(self, site, retcode: int) -> None:
        """``-k``: bpftrace's warning, in the output stream (0.26: on stderr); ``--no-warnings`` drops it."""
        if site.warnings:
            (self._diagnose if self.modern else self._emit)(helper_errors.text_warning(site, retcode))


class JsonWriter(Writer):
    fmt = "json"

    def attached(self, count: int) -> None:
        self._emit(jsonfmt.attached_json(count, self.modern))

    def printf(self, rendered: str) -> None:
        self._emit(jsonfmt.event_json("printf", rendered))

    def value(self, value: Any) -> None:
        self._emit(jsonfmt.event_json("value", value))

    def raw(self, kind: str, rendered: str) -> None:
        self._emit(jsonfmt.event_json(kind, rendered))

    def map(self, data: MapData, top: int = 0, div: int = 1) -> None:
        self._emit(jsonfmt.map_json(data, top, div, self.modern))

    def lost(self, count: int) -> None:
        self._emit(jsonfmt.lost_json(count))

    def runtime_message(self, kind: str, msg: str, filename: str, span) -> None:
        """errorf()/warnf(): a record of their own, in the output stream."""
        self._emit(jsonfmt.runtime_message_json(kind, msg, filename, span[0], span[1]))

    def helper_error(self, site, retcode: int) -> None:
        """``-k``: a ``helper_error`` record (bpftrace writes it even under ``--no-warnings``)."""
        self._emit(jsonfmt.helper_error_json(site.helper, retcode, site.span.line, site.span.col_start))


WRITERS = {"text": TextWriter, "json": JsonWriter}


def make_writer(fmt: str, stream: TextIO, buffering: str = "line", modern: bool = False) -> Writer:
    try:
        return WRITERS[fmt](stream, buffering, modern)
    except KeyError:
        raise ValueError(f"Invalid output format \"{fmt}\"\nValid formats: 'text', 'json'") from None
