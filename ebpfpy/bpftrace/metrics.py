"""``pybpftrace --metrics ADDR:PORT``: a running script's maps as Prometheus metrics.

A custom ``prometheus_client`` collector reads the maps from the kernel when Prometheus
scrapes, and only then: nothing polls, and a scrape sees the same values pybpftrace would
print at that moment (the runtime's own ``read_map``). What each map becomes:

=====================  =====================================================================
``count()``            counter ``bpftrace_<name>_total``
``sum() min() max()``  gauge ``bpftrace_<name>`` (a sum can go down: values may be negative)
``avg()``              gauge, the average as bpftrace prints it (an int, truncated)
``@x = 5`` (ints)      gauge
``stats()``            summary without quantiles: ``_count`` and ``_sum``
``hist() lhist()``     histogram: cumulative ``_bucket{le=...}`` and ``_count``
=====================  =====================================================================

Maps of strings, stacks or tuples as values have no number to export and are left out. The
unnamed map ``@`` is ``bpftrace_map``.

Labels: one per key part, named after the key expression where it is simple (a builtin such
as ``comm`` or ``pid``, a variable ``$fd``, a field ``args->fd``, or ``str()``, a cast and
the like around one), the same at every use of the map; else ``key0``, ``key1``, ...

Histogram buckets: bpftrace counts integers, and a bucket ``[low, high)`` of integers is
exactly the values ``<= high - 1``, so that is its ``le``: hist's ``[4, 8)`` is ``le="7"``,
its zero bucket ``le="0"``, the negative one ``le="-1"`` (shown once a negative value has
been seen), and its last bucket, which also counts everything above ``2**32``, is ``+Inf``.
The buckets up to the highest one a key has used are shown, all keys of a map alike, and
never fewer than in an earlier scrape (a series Prometheus has seen does not vanish).
bpftrace's histograms keep no sum, so there is no ``_sum`` sample.
"""
from __future__ import annotations

import re
import threading

from . import ast
from .output.values import Avg, Hist, LHist, Stack, Stats

PREFIX = "bpftrace_"
_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_RESERVED_LABELS = frozenset({"le", "quantile"})
_GAUGE_KINDS = frozenset({"sum", "min", "max", "avg", "int"})
# calls whose one argument names the label: @[str(args->filename)] is "filename"
_TRANSPARENT_CALLS = frozenset({"str", "ksym", "usym", "kaddr", "uaddr", "ntop", "buf", "path", "strftime"})


# -- names -------------------------------------------------------------------------------------


def metric_name(map_name: str) -> str:
    """``@calls`` -> ``bpftrace_calls``; ``@`` -> ``bpftrace_map``."""
    bare = map_name.lstrip("@") or "map"
    return PREFIX + re.sub(r"[^a-zA-Z0-9_]", "_", bare)


def _expr_name(expr) -> str | None:
    if isinstance(expr, ast.Builtin):
        return expr.name
    if isinstance(expr, ast.Variable):
        return expr.name.lstrip("$")
    if isinstance(expr, ast.FieldAccess):
        return expr.field
    if isinstance(expr, ast.Cast):
        return _expr_name(expr.expr)
    if isinstance(expr, ast.Call) and expr.name in _TRANSPARENT_CALLS and expr.args:
        return _expr_name(expr.args[0]) or expr.name
    return None


def label_names(program, map_name: str, parts: int) -> list[str]:
    """The label of each of a map's ``parts`` key parts, from the key expressions the script
    writes for it (see the module docstring)."""
    seen: list[list] = [[] for _ in range(parts)]
    if program is not None:
        for node in ast.walk(program):
            if isinstance(node, ast.Map) and node.name == map_name and len(node.keys) == parts:
                for i, key in enumerate(node.keys):
                    seen[i].append(_expr_name(key))
    names: list[str] = []
    for i, candidates in enumerate(seen):
        name = candidates[0] if candidates and len(set(candidates)) == 1 else None
        ok = (name is not None and _NAME.match(name) and not name.startswith("__")
              and name not in _RESERVED_LABELS and name not in names)
        names.append(name if ok else f"key{i}")
    return names


def label_value(part) -> str:
    """A key part as label text: ints in decimal, strings as they are, stacks as their text."""
    if isinstance(part, Stack):
        return part.text.strip("\n")
    if isinstance(part, tuple):
        return "(" + ", ".join(label_value(p) for p in part) + ")"
    return str(part)


# -- histogram buckets ------------------------------------------------------------------------


def hist_bounds(index: int) -> float:
    """The ``le`` of bucket ``index`` of a hist(): the largest integer it holds (+Inf: the last)."""
    if index == 0:
        return -1
    if index == 1:
        return 0
    if index >= 33:  # [2G, 4G) as bpftrace labels it, but it counts everything from 2**31 up
        return float("inf")
    return (1 << (index - 1)) - 1


def lhist_bounds(hist: LHist, index: int) -> float:
    """The ``le`` of bucket ``index`` of an lhist(): below min, [low, low+step), at or above max."""
    if index == 0:
        return hist.min - 1
    if index > hist.buckets:
        return float("inf")
    return hist.min + index * hist.step - 1


def _le_text(bound: float) -> str:
    return "+Inf" if bound == float("inf") else str(int(bound))


def cumulative_buckets(hist, first: int, last: int) -> list[tuple[str, int]]:
    """``(le, cumulative count)`` for buckets ``first..last`` of a hist or lhist, then ``+Inf``."""
    counts = list(hist.counts)
    bound = (lambda i: lhist_bounds(hist, i)) if isinstance(hist, LHist) else hist_bounds
    out: list[tuple[str, int]] = []
    running = sum(counts[:first])
    for index in range(first, last + 1):
        running += counts[index] if index < len(counts) else 0
        le = bound(index)
        if le == float("inf"):
            break
        out.append((_le_text(le), running))
    out.append(("+Inf", sum(counts)))
    return out


def _used_range(hist) -> tuple[int, int]:
    """The lowest and highest bucket index with counts (1, 1 for an empty hist)."""
    used = [i for i, c in enumerate(hist.counts) if c]
    return (min(used), max(used)) if used else (1, 1)


# -- the collector -----------------------------------------------------------------------------


class ScriptCollector:
    """Reads the maps through ``read_maps`` (``() -> [MapData]``) at each scrape and turns them
    into metric families. ``read_maps`` returning None means "not running": no samples."""

    def __init__(self, read_maps, program=None):
        self.read_maps = read_maps
        self.program = program
        self._ranges: dict[str, tuple[int, int]] = {}  # histogram map -> bucket range shown so far
        self.lock = threading.Lock()

    def collect(self):
        with self.lock:
            maps = self.read_maps()
            families = [] if maps is None else [f for data in maps for f in self.families(data)]
        yield from families

    def describe(self):
        return []  # nothing known before the first scrape: register without a collect() call

    def families(self, data) -> list:
        """The metric families of one map's contents (``MapData``)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

        name = metric_name(data.name)
        entries = list(data.entries)
        parts = len(entries[0][0]) if entries else 0
        labels = label_names(self.program, data.name, parts) if parts else []
        kind = data.kind
        doc = f"{data.name} = {kind}() in the bpftrace script" if kind != "int" else f"{data.name} in the script"
        if kind == "count":
            family = CounterMetricFamily(name, doc, labels=labels)
        elif kind in _GAUGE_KINDS:
            family = GaugeMetricFamily(name, doc, labels=labels)
        elif kind == "stats":
            family = Metric(name, doc, "summary")
        elif kind in ("hist", "lhist"):
            family = Metric(name, doc, "histogram")
            return [self._histograms(family, data.name, labels, entries)]
        else:
            return []  # strings, stacks, tuples: no number to export
        for key, value in entries:
            values = [label_value(part) for part in key]
            if kind == "stats" and isinstance(value, Stats):
                tags = dict(zip(labels, values))
                family.add_sample(name + "_count", tags, value.count)
                family.add_sample(name + "_sum", tags, value.total)
                continue
            number = value.value if isinstance(value, Avg) else value
            if isinstance(number, int):
                family.add_metric(values, number)
        return [family]

    def _histograms(self, family, map_name: str, labels: list, entries: list):
        hists = [(key, value) for key, value in entries if isinstance(value, (Hist, LHist))]
        low, high = self._ranges.get(map_name, (1, 1))
        for _, hist in hists:
            used_low, used_high = _used_range(hist)
            low, high = min(low, used_low), max(high, used_high)
        self._ranges[map_name] = (low, high)
        for key, hist in hists:
            tags = dict(zip(labels, (label_value(part) for part in key)))
            first, last = (0, hist.buckets + 1) if isinstance(hist, LHist) else (low, high)
            for le, count in cumulative_buckets(hist, first, last):
                family.add_sample(family.name + "_bucket", {**tags, "le": le}, count)
            family.add_sample(family.name + "_count", tags, sum(hist.counts))
        return family


# -- pybpftrace --metrics ---------------------------------------------------------------------


def metrics_runtime(base):
    """A subclass of the runtime class ``base`` that serves its maps while it runs: built with
    ``metrics_address=`` and ``program=`` (the AST, for label names) besides the runtime's own
    arguments. The socket is bound at construction, before anything is loaded; the server
    stops before the run ends (END, the exit output) and before anything is released."""

    class MetricsRuntime(base):
        def __init__(self, *args, metrics_address: str, program=None, **kwargs):
            from ebpfpy.exporter.serve import MetricsServer, require

            require("prometheus_client", "--metrics")
            from prometheus_client import CollectorRegistry

            super().__init__(*args, **kwargs)
            self.collector = ScriptCollector(self._scrape, program)
            registry = CollectorRegistry(auto_describe=False)
            registry.register(self.collector)
            self.metrics_server = MetricsServer(metrics_address, registry)

        def _scrape(self):
            if self.state != "running":
                return None
            return [self.read_map(self.script.maps[name]) for name in self.user_maps()]

        def start(self) -> None:
            super().start()
            import sys

            server = self.metrics_server
            sys.stderr.write(f"Serving metrics at http://{_host(server.address)}:{server.port}/metrics\n")
            sys.stderr.flush()

        def _stop_serving(self) -> None:
            server = getattr(self, "metrics_server", None)
            if server is not None:
                server.stop()
                with self.collector.lock:  # a scrape still reading finishes first; none after
                    self.collector.read_maps = lambda: None

        def finish(self) -> None:
            self._stop_serving()
            super().finish()

        def close(self) -> None:
            self._stop_serving()
            super().close()

    return MetricsRuntime


def _host(address: str) -> str:
    host = address.rpartition(":")[0]
    return host or "0.0.0.0"
