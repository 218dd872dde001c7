"""The two output formats behind one interface, so the runtime never asks which one it has.

``TextWriter`` and ``JsonWriter`` take the same calls in the same order; each
knows only how its format spells them. The stream is flushed after every
record, as bpftrace does, so piping the output shows events as they happen.
"""
from __future__ import annotations

from typing import Any, TextIO

from . import jsonfmt, text
from .values import MapData


class Writer:
    def __init__(self, stream: TextIO):
        self.stream = stream

    def _emit(self, chunk: str) -> None:
        if chunk:
            self.stream.write(chunk)
            self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


class TextWriter(Writer):
    fmt = "text"

    def attached(self, count: int) -> None:
        self._emit(text.format_attached(count))

    def printf(self, rendered: str) -> None:
        self._emit(rendered)

    def value(self, value: Any) -> None:
        self._emit(text.format_value(value) + "\n")

    def raw(self, kind: str, rendered: str) -> None:
        """Output of time(), cat(), system(), join(): already text."""
        self._emit(rendered)

    def map(self, data: MapData, top: int = 0, div: int = 1) -> None:
        self._emit(text.format_map(data, top, div))

    def exit_separator(self) -> None:
        self._emit("\n\n")

    def lost(self, count: int) -> None:
        self._emit(text.format_lost(count))


class JsonWriter(Writer):
    fmt = "json"

    def attached(self, count: int) -> None:
        self._emit(jsonfmt.attached_json(count))

    def printf(self, rendered: str) -> None:
        self._emit(jsonfmt.event_json("printf", rendered))

    def value(self, value: Any) -> None:
        self._emit(jsonfmt.event_json("value", value))

    def raw(self, kind: str, rendered: str) -> None:
        self._emit(jsonfmt.event_json(kind, rendered))

    def map(self, data: MapData, top: int = 0, div: int = 1) -> None:
        self._emit(jsonfmt.map_json(data, top, div))

    def exit_separator(self) -> None:
        # bpftrace prints the two blank lines in JSON mode too.
        self._emit("\n\n")

    def lost(self, count: int) -> None:
        self._emit(jsonfmt.lost_json(count))


WRITERS = {"text": TextWriter, "json": JsonWriter}


def make_writer(fmt: str, stream: TextIO) -> Writer:
    try:
        return WRITERS[fmt](stream)
    except KeyError:
        raise ValueError(f"Invalid output format \"{fmt}\"\nValid formats: 'text', 'json'") from None
