"""ebpf_exporter on ebpfpy: each config's clang-built object loaded with ebpfpy's ELF loader,
attached by section name, and its maps read into metrics when Prometheus scrapes.

Beside the configs' metrics it exports ebpf_exporter's own: ``ebpf_exporter_enabled_configs``,
``ebpf_exporter_ebpf_program_info`` (config, id, program, tag),
``ebpf_exporter_ebpf_program_attached``, and the kernel's per-program run statistics,
``ebpf_exporter_ebpf_program_run_count_total`` and ``..._run_time_seconds``: these count
only while BPF stats are on (the ``kernel.bpf_stats_enabled`` sysctl, or a process holding
``BPF_ENABLE_STATS``), and read 0 otherwise, as in ebpf_exporter.

Everything is checked before the first object is loaded (configs, decoders, files), then
each object's maps are checked against its config (a metric needs a map of its name whose
key size is what its labels add up to); a failure unloads what was loaded and says which
config, metric or program is at fault. A program that does not attach is reported and
exported as ``attached 0``; ``strict`` makes that an error, as ``--config.strict`` does.
"""
from __future__ import annotations

import contextlib
import sys
import threading

from .config import Config
from .decoders import DecodeError, Decoders
from .metrics import BucketError, counter_family, counter_series, histogram_family, histogram_series


class ExporterError(Exception):
    """A config that cannot run here: one line for the user."""


class Exporter:
    """The loaded configs. ``with Exporter(configs) as e:`` loads and attaches (``start``);
    leaving detaches and unloads everything. ``collect()`` is the prometheus_client collector."""

    def __init__(self, configs: list[Config], *, strict: bool = False, log=None, decoders: Decoders | None = None):
        self.configs = configs
        self.strict = strict
        self.log = log or (lambda text: print(text, file=sys.stderr, flush=True))
        self.decoders = decoders or Decoders()
        self.objects: dict[str, object] = {}  # config name -> BPFObject
        self.attached: dict[tuple, bool] = {}  # (config name, program name) -> attached?
        self.lock = threading.Lock()
        self.closed = False

    # -- load and attach ---------------------------------------------------------------------------

    def start(self) -> Exporter:
        try:
            for config in self.configs:
                self.objects[config.name] = self._load(config)
        except BaseException:
            self.close()
            raise
        return self

    def _load(self, config: Config):
        from ebpfpy.attach.errors import AttachError
        from ebpfpy.elf import ObjectError, load_object
        from ebpfpy.sys.errors import BPFError

        try:
            obj = load_object(config.object_path)
        except (ObjectError, OSError) as err:
            raise ExporterError(f"config {config.name!r}: {_first_line(err)}") from None
        self.objects[config.name] = obj  # released by close() from here on
        self._check_maps(config, obj)
        for symbol in config.kaddrs:
            self._set_kaddr(config, obj, symbol)
        try:
            obj.load()
        except (ObjectError, BPFError, OSError) as err:
            raise ExporterError(f"config {config.name!r}: loading {config.object_path}: {_first_line(err)}") from None
        missed = []
        for prog in obj.programs.values():
            if prog.program is None:
                continue
            ok = False
            if prog.attachable and prog.link_target is None:
                try:
                    obj.attachments += prog.attach()
                    ok = True
                except (AttachError, ObjectError, BPFError, OSError) as err:
                    self.log(f"config {config.name!r}: program {prog.name} ({prog.section}) did not attach: "
                             f"{_first_line(err)}")
            else:
                self.log(f"config {config.name!r}: program {prog.name}: section {prog.section!r} names "
                         "nothing to attach to")
            self.attached[(config.name, prog.name)] = ok
            if not ok:
                missed.append(f"{config.name}:{prog.name}")
        if self.strict and missed:
            raise ExporterError(f"missed attachments (config:program): {', '.join(missed)}")
        return obj

    def _check_maps(self, config: Config, obj) -> None:
        for metric in (*config.counters, *config.histograms):
            spec = obj.map_specs.get(metric.name)
            if spec is None:
                raise ExporterError(f"config {config.name!r}: metric {metric.name!r}: {config.object_path} has no "
                                    f"map named {metric.name!r}")
            labels = metric.labels
            if (labels and labels[-1].name == "cpu" and metric in config.counters
                    and _percpu(spec.map_type)):
                labels = labels[:-1]
            size = sum(label.size + label.padding for label in labels)
            if size != spec.key_size:
                raise ExporterError(f"config {config.name!r}: metric {metric.name!r}: the map's key is "
                                    f"{spec.key_size} bytes, but the labels' sizes and paddings add up to {size}")
            if spec.value_size > 8:
                raise ExporterError(f"config {config.name!r}: metric {metric.name!r}: the map's values are "
                                    f"{spec.value_size} bytes; a counter or bucket must be an integer of 8 at most")

    def _set_kaddr(self, config: Config, obj, symbol: str) -> None:
        from ebpfpy.events.symbols import kaddr

        try:
            address = kaddr(symbol)
        except (KeyError, OSError):
            raise ExporterError(f"config {config.name!r}: kaddrs: no kernel symbol {symbol!r} "
                                "in /proc/kallsyms") from None
        try:
            obj.globals[f"kaddr_{symbol}"] = address
        except (KeyError, ValueError) as err:
            raise ExporterError(f"config {config.name!r}: kaddrs: cannot set kaddr_{symbol}: {err}") from None

    # -- release -----------------------------------------------------------------------------------

    def close(self) -> None:
        """Detach and unload everything (again: a no-op); waits for a scrape in progress."""
        with self.lock:
            self.closed = True
            objects, self.objects = self.objects, {}
        for obj in objects.values():
            with contextlib.suppress(OSError):
                obj.close()

    def __enter__(self) -> Exporter:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- collect -----------------------------------------------------------------------------------

    def describe(self):
        return []

    def collect(self):
        with self.lock:
            if self.closed:
                return []
            try:
                return self._families()
            except (OSError, ValueError) as err:  # a map or program gone from under us: this scrape fails
                self.log(f"error collecting metrics: {_first_line(err)}")
                raise

    def _families(self) -> list:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

        out = []
        for config in self.configs:
            obj = self.objects.get(config.name)
            if obj is None:
                continue
            for counter in config.counters:
                entries = self._entries(obj, counter.name)
                out.append(counter_family(counter, self._series(counter_series, counter, entries, config)))
            for hist in config.histograms:
                entries = self._entries(obj, hist.name)
                out.append(histogram_family(hist, self._series(histogram_series, hist, entries, config)))
        enabled = GaugeMetricFamily("ebpf_exporter_enabled_configs", "The set of enabled configs", labels=["name"])
        info = GaugeMetricFamily("ebpf_exporter_ebpf_program_info", "Info about ebpf programs",
                                 labels=["config", "id", "program", "tag"])
        attached = GaugeMetricFamily("ebpf_exporter_ebpf_program_attached", "Whether a program is attached",
                                     labels=["id"])
        run_time = Metric("ebpf_exporter_ebpf_program_run_time_seconds",
                          "How long has the program been executing", "unknown")
        run_count = CounterMetricFamily("ebpf_exporter_ebpf_program_run_count_total",
                                        "How many times has the program been executed", labels=["id"])
        for config in self.configs:
            enabled.add_metric([config.name], 1)
            obj = self.objects.get(config.name)
            if obj is None:
                continue
            for prog in obj.programs.values():
                if prog.program is None:
                    continue
                try:
                    pinfo = prog.info()
                except OSError:
                    continue
                pid = str(pinfo.id)
                info.add_metric([config.name, pid, prog.name, pinfo.tag_hex], 1)
                attached.add_metric([pid], 1 if self.attached.get((config.name, prog.name)) else 0)
                run_time.add_sample(run_time.name, {"id": pid}, pinfo.run_time_ns / 1e9)
                run_count.add_metric([pid], pinfo.run_cnt)
        return [*out, enabled, info, attached, run_time, run_count]

    def _entries(self, obj, name: str) -> list:
        """(key bytes, value) of a map: an int, or one int per CPU for per-CPU maps."""
        m = obj.maps[name]
        ncpus, width = m.ncpus, min(m.value_size, 8)
        slot = m.user_value_size // ncpus
        entries = []
        for key, raw in m.raw_items():
            cells = [int.from_bytes(raw[i * slot:i * slot + width], sys.byteorder) for i in range(ncpus)]
            entries.append((key, cells if _percpu(m.map_type) else cells[0]))
        return entries

    def _series(self, make, metric, entries, config) -> dict:
        try:
            return make(metric, entries, self.decoders)
        except (DecodeError, BucketError) as err:
            self.log(f"config {config.name!r}: metric {metric.name!r}: {err}")
            return {}


def _percpu(map_type) -> bool:
    from ebpfpy.sys.consts import MapType

    return map_type in (MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH)


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
