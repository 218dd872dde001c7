"""bpftrace scripts from Python: compile, run, read the maps as Python values, iterate the events.

    from ebpfpy.bpftrace import Script

    script = Script('tracepoint:syscalls:sys_enter_getpid { @[comm] = count(); }')
    with script.run() as run:
        run.wait(timeout=5)          # serve events for 5 s (or until exit())
        print(run.maps["@"])         # {'python3': 12, ...}: read from the kernel now

``Script`` is the CLI's compiler (``driver.compile_source``) under the CLI's
checks; ``Run`` is the CLI's ``Runtime`` (the same start, event loop, END and
teardown, built by the same ``driver.make_runtime``), with a writer that keeps
each event's text as the CLI would print it. The two cannot drift: there is no
second implementation of either.

Values, as bpftrace prints them:

* a map is a ``MapValues`` dict in bpftrace's print order; a key of one part is
  that part, a key of several is a tuple; a map without keys (``@x = count()``)
  is its value itself (None while unset; a count() reads 0, as bpftrace prints it);
* ints are ints, strings are ``str``, stacks and symbols their text, tuples tuples;
* avg() is the int bpftrace prints (truncated toward zero); stats() is a
  ``Stats(count, average, total)`` named tuple;
* hist() and lhist() are a ``Histogram``: the rows bpftrace prints, each a
  ``Bucket(low, high, count)`` with ``low <= value < high``. An open end is
  None: hist's first row ``(..., 0)`` is ``Bucket(None, 0, n)``, lhist's
  ``(..., min)`` and ``[max, ...)`` are ``Bucket(None, min, n)`` and
  ``Bucket(max, None, n)``; hist's last bucket is ``[2G, 4G)``, as bpftrace
  labels it, though it also counts larger values.

A Run is used from one thread. Events are read from the kernel only while the
run is served (``events()``, ``wait()``, ``exited``); those not iterated yet
are kept in order until they are.
"""
from __future__ import annotations

import collections
import contextlib
import html
import io
import time
import warnings as _warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from . import driver
from .compat import is_modern
from .diagnostics import Diagnostic
from .output import values as _values
from .output.printf import PrintfFormat
from .output.text import format_histogram, format_key, format_map, hist_label, lhist_label
from .output.values import HISTOGRAM_KINDS, Hist, LHist, MapData, divide, histogram_rows
from .output.writer import make_writer
from .runtime import Child, Runtime

__all__ = [
    "BpftraceError",
    "BpftraceWarning",
    "Bucket",
    "CompileError",
    "Event",
    "Histogram",
    "MapValues",
    "Maps",
    "Run",
    "RunError",
    "Script",
    "Stats",
]


# -- errors ----------------------------------------------------------------------------------


class BpftraceError(Exception):
    """What pybpftrace would print as an error and exit 1 for; ``text`` is that output exactly,
    ``str()`` the same without its last newline."""

    def __init__(self, text: str):
        self.text = text if text.endswith("\n") else text + "\n"
        super().__init__(self.text.rstrip("\n"))

    def __str__(self) -> str:
        return self.text.rstrip("\n")


class CompileError(BpftraceError, Diagnostic):
    """A script error: bpftrace's message (``message``) and source range (``span``);
    ``str()`` is bpftrace's ``stdin:L:C-C: ERROR: ...``, the source line and its underline.
    ``diagnostic`` is the compiler's own exception."""

    def __init__(self, diagnostic: Diagnostic, options: driver.Options):
        Diagnostic.__init__(self, diagnostic.messages, source=options.source, filename=options.filename)
        self.diagnostic = diagnostic
        self.text = self.format()

    def __str__(self) -> str:
        return self.text.rstrip("\n")


class RunError(BpftraceError):
    """The system refused the run (a probe that cannot attach, a program the kernel rejects,
    no permission, a command that cannot start); ``error`` is the exception underneath."""

    def __init__(self, text: str, error: BaseException | None = None):
        super().__init__(text)
        self.error = error


class BpftraceWarning(UserWarning):
    """A warning of the compiler, issued with ``warnings.warn`` (``Script(..., warnings=False)``:
    none); the texts are also in ``Script.warnings``."""


# -- values ----------------------------------------------------------------------------------


class Stats(NamedTuple):
    """A stats() value; ``average`` as bpftrace prints it (an int, truncated toward zero)."""

    count: int
    average: int
    total: int


class Bucket(NamedTuple):
    """One histogram row: ``count`` values with ``low <= value < high``; None is an open end."""

    low: int | None
    high: int | None
    count: int


def _bounds(hist, index: int) -> tuple:
    """The bounds of bucket ``index`` of a hist or lhist, as bpftrace's label shows them."""
    if isinstance(hist, LHist):
        if index == 0:
            return None, hist.min
        if index == hist.buckets + 1:
            return hist.max, None
        low = hist.min + (index - 1) * hist.step
        return low, low + hist.step
    if index == 0:
        return None, 0
    if index == 1:
        return 0, 1
    return 1 << (index - 2), 1 << (index - 1)


def _label(hist, index: int) -> str:
    return lhist_label(hist, index) if isinstance(hist, LHist) else hist_label(index)


class Histogram(list):
    """A hist() or lhist() value: the rows bpftrace prints (from the lowest to the highest
    bucket that has counts), each a ``Bucket(low, high, count)``. ``labels`` are bpftrace's
    row labels, ``text`` its drawing; in Jupyter it draws as a bar chart."""

    def __init__(self, hist: Hist | LHist, div: int = 1):
        super().__init__(Bucket(*_bounds(hist, index), shown) for index, _, shown in histogram_rows(hist, div))
        self.kind = "lhist" if isinstance(hist, LHist) else "hist"
        self.hist = hist
        self.div = div

    @property
    def labels(self) -> list[str]:
        return [_label(self.hist, index) for index, _, _ in histogram_rows(self.hist, self.div)]

    @property
    def text(self) -> str:
        """The rows as bpftrace draws them (label, count, bar)."""
        return format_histogram(self.hist, self.div)

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        printer.text(self.text.rstrip("\n") or "(empty histogram)")

    def _repr_html_(self) -> str:
        return histogram_svg(self.hist, self.div)


def histogram_svg(hist: Hist | LHist, div: int = 1) -> str:
    """An inline SVG bar chart of a hist or lhist: bpftrace's rows, labels and counts."""
    rows = histogram_rows(hist, div)
    if not rows:
        return "<pre>(empty histogram)</pre>"
    row, label_width, bar_width = 18, 130, 360
    top = max(count for _, count, _ in rows)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_width + bar_width + 90}" '
             f'height="{len(rows) * row + 4}" font-family="monospace" font-size="12">']
    for i, (index, count, shown) in enumerate(rows):
        y = i * row + 2
        width = round(bar_width * count / top) if top else 0
        label = html.escape(_label(hist, index))
        parts.append(f'<text x="{label_width - 6}" y="{y + 13}" text-anchor="end">{label}</text>'
                     f'<rect x="{label_width}" y="{y + 3}" width="{width}" height="12" fill="#4878a8">'
                     f"<title>{label}: {shown}</title></rect>"
                     f'<text x="{label_width + width + 4}" y="{y + 13}">{shown}</text>')
    parts.append("</svg>")
    return "".join(parts)


def python_value(value: Any, div: int = 1) -> Any:
    """A value the runtime decoded, as the Python value described in this module's docstring.
    ``div`` is print()'s divisor, applied as bpftrace applies it."""
    if isinstance(value, (Hist, LHist)):
        return Histogram(value, div)
    value = divide(value, div)
    kind = type(value)
    if kind is int or kind is str:
        return value
    if isinstance(value, _values.Record):  # today's records: their fields by name
        return {name: python_value(part) for name, part in zip(value.names, value)}
    if isinstance(value, tuple):
        return tuple(python_value(part) for part in value)
    if isinstance(value, _values.Stats):
        return Stats(value.count, value.value, value.total)
    if isinstance(value, _values.Avg):
        return value.value
    if isinstance(value, _values.Stack):
        return value.text
    if isinstance(value, list):
        return [python_value(part) for part in value]
    return value


def python_key(key: tuple) -> Any:
    """A map key: its one part itself, or a tuple of several."""
    if len(key) == 1:
        return python_value(key[0])
    return tuple(python_value(part) for part in key)


class MapValues(dict):
    """One map's entries read at one moment, in bpftrace's print order: Python key -> value.
    ``text`` is the map as bpftrace prints it; in Jupyter it shows that (histograms as charts)."""

    def __init__(self, data: MapData, top: int = 0, div: int = 1, modern: bool = False):
        super().__init__()
        self.name = data.name
        self.kind = data.kind
        self._data, self._top, self._div, self._modern = data, top, div, modern
        for key, value in data.sorted_entries(top):
            self[python_key(key)] = python_value(value, div)

    @property
    def text(self) -> str:
        return format_map(self._data, self._top, self._div, self._modern)

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        printer.text(self.text.rstrip("\n") or f"{self.name}: (empty)")

    def _repr_html_(self) -> str:
        return _map_html(self._data, self._top, self._div, self._modern)


def _map_html(data: MapData, top: int = 0, div: int = 1, modern: bool = False) -> str:
    if data.kind in HISTOGRAM_KINDS:
        return "<div>" + "".join(f"<pre>{html.escape(format_key(data.name, key))}:</pre>{histogram_svg(hist, div)}"
                                 for key, hist in data.sorted_entries(top)) + "</div>"
    return f"<pre>{html.escape(format_map(data, top, div, modern))}</pre>"


def map_value(data: MapData, top: int = 0, div: int = 1, modern: bool = False) -> Any:
    """A map as Python: a ``MapValues`` dict, or for a map without keys its value (None if unset)."""
    if data.keyed:
        return MapValues(data, top, div, modern)
    entries = data.sorted_entries(top)
    return python_value(entries[0][1], div) if entries else None


class Maps(Mapping):
    """``run.maps``: the script's ``@`` maps by name (``"@"`` for the unnamed one; the ``@`` may
    be left out), read from the kernel at each lookup while the run is going, and their final
    values once it has ended."""

    def __init__(self, run: Run):
        self._run = run

    def _names(self) -> list[str]:
        return sorted(name for name in self._run.script.compiled.maps if name.startswith("@"))

    def _name(self, name: str) -> str:
        name = name if name.startswith("@") else "@" + name
        if name not in self._run.script.compiled.maps:
            raise KeyError(name)
        return name

    def __getitem__(self, name: str) -> Any:
        return map_value(self._run._read_map(self._name(name)), modern=self._run.script.modern)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name if name.startswith("@") else "@" + name) in self._names()

    @property
    def text(self) -> str:
        """Every map as pybpftrace prints them when the run ends."""
        modern = self._run.script.modern
        return "".join(format_map(self._run._read_map(name), modern=modern) for name in self._names())

    def __repr__(self) -> str:
        return repr(dict(self.items()))

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        printer.text(self.text.rstrip("\n"))

    def _repr_html_(self) -> str:
        modern = self._run.script.modern
        return "".join(_map_html(self._run._read_map(name), modern=modern) for name in self._names())


# -- events ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One output of the script, in order.

    ``kind``: ``printf``, ``print`` (print() of a map or a value), ``time``, ``cat``,
    ``system``, ``join``, ``helper_error`` (``helper_errors=1``) or ``lost`` (events the
    kernel dropped). ``format``: the printf/cat/system format or time()'s strftime format,
    else None. ``args``: the arguments as Python values (print: the map or value; lost: the
    count). ``text``: exactly what pybpftrace prints for it.
    """

    kind: str
    format: str | None
    args: tuple
    text: str

    def __str__(self) -> str:
        return self.text


# action kind -> event kind, for the actions that print (exit, clear and zero print nothing)
_EVENT_KINDS = {"printf": "printf", "print_value": "print", "time": "time", "cat": "cat",
                "system": "system", "join": "join", "helper_error": "helper_error"}


def _format_of(action) -> str | None:
    data = action.data
    if isinstance(data, PrintfFormat):
        return data.fmt
    return data if isinstance(data, str) else None


class _Recorder(Runtime):
    """The CLI's runtime, writing into a buffer: each event's text is taken from it as soon as
    the CLI's writer has written it, and queued with its arguments as an ``Event``. At the end
    the maps are kept (``final``) instead of printed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.queue: collections.deque = collections.deque()
        self.final: dict | None = None
        for kind, event_kind in _EVENT_KINDS.items():
            self._handlers[kind] = self._recording(event_kind, self._handlers[kind])

    def _take(self) -> str:
        stream = self.writer.stream
        text = stream.getvalue()
        stream.seek(0)
        stream.truncate()
        return text

    def _recording(self, event_kind: str, handler):
        def record(action, args):
            handler(action, args)
            self.queue.append(Event(event_kind, _format_of(action), tuple(python_value(a) for a in args),
                                    self._take()))
        return record

    def _on_print_map(self, action, args) -> None:
        name, top, div = action.data
        data = self.read_map(self.script.maps[name])
        self.writer.map(data, top, div)
        self.queue.append(Event("print", None, (map_value(data, top, div, self.writer.modern),), self._take()))

    def _on_lost(self, cpu: int, count: int) -> None:
        super()._on_lost(cpu, count)
        self.queue.append(Event("lost", None, (count,), self._take()))

    def read_all(self) -> dict:
        return {name: self.read_map(self.script.maps[name]) for name in self.user_maps()}

    def exit_output(self) -> None:
        self.final = self.read_all()

    def close(self) -> None:
        if self.state == "running" and self.final is None:  # ended by an error: keep what can be read
            with contextlib.suppress(Exception):
                self.final = self.read_all()
        super().close()


def _emulated_recorder() -> type:
    """The recorder over ebpfpy.vm instead of the kernel (``Script(..., emulate=True)``)."""
    from .emulate import EmulatedRuntime

    return type("_EmulatedRecorder", (_Recorder, EmulatedRuntime), {})


# -- script and run --------------------------------------------------------------------------

_NO_PID = 4194305  # above the kernel's PID_MAX_LIMIT


class Script:
    """A compiled bpftrace script. Raises ``CompileError`` for a script error, ``BpftraceError``
    for what pybpftrace refuses before running (``strlen`` over 200, ``pid`` of no process,
    more probes than ``max_probes``).

    The options are pybpftrace's: ``params`` ($1, $2, ...), ``pid`` (-p), ``command`` (-c: run
    and trace it; the run ends when it exits), ``unsafe`` (--unsafe), ``helper_errors`` (-k:
    1, -kk: 2), ``warnings`` (False: --no-warnings), ``include_dirs`` (-I), ``includes``
    (--include), and the BPFTRACE_* settings ``strlen``, ``map_keys_max``, ``max_probes``,
    ``perf_pages``, ``cat_bytes_max``, ``log_size``, ``user_symbols``. ``emulate=True``
    (--emulate) runs BEGIN, END, interval and profile probes in ``ebpfpy.vm``, without root.
    ``compat`` (--compat): ``"0.26"``, today's language and texts, or ``"0.17"``; by default
    ``PYBPFTRACE_COMPAT``, else today's. Map texts, event texts and values follow it (a record
    is a dict of its fields; a bool a bool).
    """

    def __init__(self, source: str, *, params=(), pid: int | None = None, command: str | None = None,
                 unsafe: bool = False, helper_errors: int = 0, warnings: bool = True, strlen: int = 64,
                 map_keys_max: int = 4096, max_probes: int = 512, perf_pages: int = 64,
                 cat_bytes_max: int = 10240, log_size: int = 1000000, user_symbols: bool = True,
                 include_dirs=(), includes=(), filename: str = "stdin", emulate: bool = False,
                 compat: str | None = None):
        self.source = source
        self.options = driver.Options(
            source=source, filename=filename, params=tuple(str(p) for p in params), pid=pid or -1,
            command=command, quiet=True, unsafe=unsafe, warnings=warnings, helper_errors=int(helper_errors),
            strlen=strlen, map_keys_max=map_keys_max, max_probes=max_probes, perf_pages=perf_pages,
            cat_bytes_max=cat_bytes_max, log_size=log_size, no_user_symbols=0 if user_symbols else 1,
            include_dirs=tuple(include_dirs), includes=tuple(includes), emulate=emulate, compat=compat)
        # today's language and texts (the default), or 0.17's (compat="0.17", PYBPFTRACE_COMPAT)
        self.modern = is_modern(compat)
        error = driver.option_error(self.options)
        if error:
            raise BpftraceError(error)
        found: list = []
        # With a command, its pid (cpid) is compiled in: each run forks it and compiles again.
        # Until then, a pid no process can have stands in for it.
        self.program, self.compiled = self._compile(_NO_PID if command else 0, found.extend)
        found.extend(self.compiled.warnings)
        self.warnings = [driver.format_warning(w, self.options) for w in found]
        if warnings:
            for text in self.warnings:
                _warnings.warn(text.rstrip("\n"), BpftraceWarning, stacklevel=2)
        error = driver.probe_limit_error(self.compiled, self.options)
        if error:
            raise BpftraceError(error)

    def _compile(self, cpid: int, warn):
        try:
            return driver.compile_source(self.options, cpid=cpid, warn=warn)
        except Diagnostic as diag:
            raise CompileError(diag, self.options) from None

    @property
    def probe_count(self) -> int:
        """The probes the script attaches to, as "Attaching N probes..." counts them."""
        return self.compiled.probe_count

    @property
    def map_names(self) -> list[str]:
        return sorted(name for name in self.compiled.maps if name.startswith("@"))

    def run(self, fmt: str = "text") -> Run:
        """A run of the script, started by ``with`` (or ``start()``). ``fmt="json"``: each
        event's ``text`` is pybpftrace's ``-f json`` line instead."""
        return Run(self, fmt)

    def __repr__(self) -> str:
        first = self.source.strip().split("\n", 1)[0]
        if not hasattr(self, "compiled"):  # failed to compile
            return f"<Script {first[:60]!r}>"
        return f"<Script {first[:60]!r}: {self.probe_count} probes, maps {self.map_names}>"


class Run:
    """One run of a Script: ``with script.run() as run:`` loads and attaches it and runs BEGIN;
    leaving the block ends it as pybpftrace ends: normally or by KeyboardInterrupt (Ctrl-C)
    the probes are detached, END runs, and the final map values stay readable; by any other
    exception everything is released at once. Either way nothing stays in the kernel (the
    programs, maps, links and perf events are fds, closed then, and closed by the kernel
    should the process die). exit() in the script, or the end of ``command``, ends the run
    in the same order as soon as it is noticed (``events()``, ``wait()``, ``exited``).
    """

    def __init__(self, script: Script, fmt: str = "text"):
        self.script = script
        self.fmt = fmt
        self._runtime: _Recorder | None = None
        self.maps = Maps(self)

    def start(self) -> Run:
        """Load, attach, run BEGIN; raises ``RunError`` (with pybpftrace's message) if the
        kernel refuses. Returns the run, for ``run = script.run().start()`` in a notebook."""
        if self._runtime is not None:
            raise RuntimeError("this run has already started; script.run() makes another")
        options = self.script.options
        writer = make_writer(self.fmt, io.StringIO(), buffering="full", modern=self.script.modern)
        driver._raise_nofile()  # as pybpftrace does: every probe holds fds
        child = None
        try:
            compiled = self.script.compiled
            if options.command:
                child = Child(options.command)
                compiled = self.script._compile(child.pid, lambda warnings: None)[1]  # cpid is compiled in
            runtime = driver.make_runtime(compiled, options, writer, child, trap_signals=False,
                                          runtime_class=_emulated_recorder() if options.emulate else _Recorder)
            runtime.__enter__()
        except driver.runtime_errors() as err:
            if child is not None:
                child.terminate()
            raise RunError(driver.runtime_error_text(err, options), err) from err
        except BaseException:
            if child is not None:
                child.terminate()
            raise
        self._runtime = runtime
        return self

    def __enter__(self) -> Run:
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._runtime is not None:
            self._runtime.__exit__(exc_type, exc, tb)

    def _started(self) -> _Recorder:
        if self._runtime is None:
            raise RuntimeError("the run has not started: use `with script.run() as run:` or run.start()")
        return self._runtime

    def stop(self) -> None:
        """End the run now, in order (detach, END; the final maps stay readable), and release
        everything. Does nothing once the run is over."""
        if self._runtime is not None:
            self._runtime.__exit__(None, None, None)

    def close(self) -> None:
        """Release everything now, without END (what an exception in the ``with`` block does)."""
        if self._runtime is not None:
            self._runtime.close()

    def wait(self, timeout: float | None = None) -> bool:
        """Serve events (kept for ``events()``) until the run ends, or ``timeout`` seconds;
        True when it has ended."""
        return self._started().wait(timeout)

    @property
    def exited(self) -> bool:
        """Whether the run is over (exit(), the end of ``command``, stop(), an error); asking
        serves the events already waiting, without blocking."""
        runtime = self._runtime
        if runtime is None:
            return False
        runtime.serve_once(time.monotonic())
        return runtime.state != "running"

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """The script's events, in order, as they come. Ends when the run is over (with the
        events of END), or, given ``timeout`` (seconds), once that long has passed."""
        runtime = self._started()
        deadline = None if timeout is None else time.monotonic() + timeout
        queue = runtime.queue
        while True:
            while queue:
                yield queue.popleft()
            if not runtime.serve_once(deadline):
                break
        while queue:
            yield queue.popleft()

    def _read_map(self, name: str) -> MapData:
        runtime = self._started()
        if runtime.state == "running":
            return runtime.read_map(runtime.script.maps[name])
        if runtime.final is None:
            raise RuntimeError("the run failed before its maps could be read")
        return runtime.final[name]

    @property
    def probe_count(self) -> int:
        """The probes attached, as "Attaching N probes..." counts them."""
        return self._started().attached_count

    @property
    def cpid(self) -> int | None:
        """The pid of ``command`` (bpftrace's ``cpid``), or None."""
        child = self._runtime.child if self._runtime is not None else None
        return child.pid if child is not None else None

    def __repr__(self) -> str:
        state = "not started" if self._runtime is None else self._runtime.state
        return f"<Run {state}: {self.script!r}>"
