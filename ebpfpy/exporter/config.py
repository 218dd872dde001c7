"""ebpf_exporter's config files (its v2 format), read and checked before anything is loaded.

``--config.dir=DIR --config.names=a,b`` means ``DIR/a.yaml`` with the object
``DIR/a.bpf.o``, and so on. A config is::

    metrics:
      counters:
        - name: NAME            # also the name of the BPF map it is read from
          help: TEXT
          labels: [LABEL, ...]  # one per field of the map's key, in order
      histograms:
        - name: NAME
          help: TEXT
          bucket_type: exp2 | exp2zero | linear | fixed
          bucket_min: INT       # exp2, exp2zero, linear
          bucket_max: INT
          bucket_keys: [NUM...] # fixed
          bucket_multiplier: NUM   # default 1
          labels: [LABEL, ...]  # the last one is the bucket
    kaddrs: [SYMBOL, ...]       # kernel addresses written into globals kaddr_SYMBOL

    LABEL:  name: NAME, size: BYTES, padding: BYTES (default 0), decoders: [DECODER, ...]
    DECODER: name: NAME (+ static_map / allow_unknown / regexps, as the decoder takes)

Every mistake is a ``ConfigError`` naming the file and the place (``metrics.counters[0].labels[1]:
...``), so a typo never surfaces as a Python traceback or a half-loaded exporter. Parts of
ebpf_exporter's format that need machinery ebpfpy does not have (perf_event_array counters,
tracing spans, the cgroup id map) are refused by name.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

BUCKET_TYPES = ("exp2", "exp2zero", "linear", "fixed")
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
# ebpf_exporter keys this exporter cannot serve: key -> why
_UNSUPPORTED_TOP = {
    "tracing": "tracing spans (OpenTelemetry) are not supported",
    "cgroup_id_map": "cgroup_id_map is not supported",
}
_UNSUPPORTED_COUNTER = {
    "perf_event_array": "counters from perf_event_array maps are not supported",
    "flush_interval": "flush_interval (perf_event_array counters) is not supported",
    "values": "counters with several values per key are not supported",
}


class ConfigError(Exception):
    """A config that cannot be used: one line saying where and why."""


@dataclass(frozen=True)
class Decoder:
    name: str
    static_map: dict = field(default_factory=dict)
    allow_unknown: bool = False
    regexps: tuple = ()


@dataclass(frozen=True)
class Label:
    name: str
    size: int
    decoders: tuple
    padding: int = 0


@dataclass(frozen=True)
class Counter:
    name: str
    help: str
    labels: tuple


@dataclass(frozen=True)
class Histogram:
    name: str
    help: str
    labels: tuple  # the last one is the bucket
    bucket_type: str
    bucket_min: int = 0
    bucket_max: int = 0
    bucket_keys: tuple = ()
    bucket_multiplier: float = 1.0


@dataclass
class Config:
    name: str
    path: str  # the YAML file
    object_path: str  # the clang-built object next to it
    counters: list = field(default_factory=list)
    histograms: list = field(default_factory=list)
    kaddrs: list = field(default_factory=list)


def load_configs(directory: str, names: str | list) -> list[Config]:
    """The configs ``names`` (a list, or ebpf_exporter's comma-separated text) from ``directory``."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",")]
    names = [n for n in names if n]
    if not names:
        raise ConfigError("--config.names: no config names given")
    if not os.path.isdir(directory):
        raise ConfigError(f"--config.dir: {directory}: not a directory")
    if len(set(names)) != len(names):
        raise ConfigError(f"--config.names: a config is named twice: {','.join(names)}")
    return [load_config(os.path.join(directory, name + ".yaml"), name) for name in names]


def load_config(path: str, name: str | None = None) -> Config:
    """One config file; its object is the ``.bpf.o`` of the same name beside it."""
    from .serve import require

    yaml = require("yaml", "reading ebpf_exporter configs")
    name = name or os.path.basename(path).rsplit(".", 1)[0]
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as err:
        raise ConfigError(f"config {name!r}: {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
    except UnicodeDecodeError as err:  # not text at all: say which file, not only the codec's complaint
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    obj = os.path.join(os.path.dirname(path), name + ".bpf.o")
    return parse_config(data, name, path, obj)


def parse_config(data, name: str, path: str = "<config>", object_path: str = "") -> Config:
    """A config from its parsed YAML (dicts and lists), checked."""
    where = _Where(path)
    if data is None:
        data = {}
    where.mapping(data, "")
    for key, why in _UNSUPPORTED_TOP.items():
        if key in data:
            raise where.error(key, why)
    where.known(data, "", ("metrics", "kaddrs"))
    config = Config(name=name, path=path, object_path=object_path)
    kaddrs = data.get("kaddrs") or []
    where.sequence(kaddrs, "kaddrs")
    config.kaddrs = [where.string(k, f"kaddrs[{i}]") for i, k in enumerate(kaddrs)]
    metrics = data.get("metrics") or {}
    where.mapping(metrics, "metrics")
    where.known(metrics, "metrics", ("counters", "histograms"))
    seen: set[str] = set()
    for kind in ("counters", "histograms"):
        items = metrics.get(kind) or []
        where.sequence(items, f"metrics.{kind}")
        for i, item in enumerate(items):
            place = f"metrics.{kind}[{i}]"
            metric = _counter(item, place, where) if kind == "counters" else _histogram(item, place, where)
            if metric.name in seen:
                raise where.error(place, f"metric {metric.name!r} is defined twice")
            seen.add(metric.name)
            (config.counters if kind == "counters" else config.histograms).append(metric)
    return config


def _counter(item, place: str, where: _Where) -> Counter:
    where.mapping(item, place)
    for key, why in _UNSUPPORTED_COUNTER.items():
        if item.get(key):
            raise where.error(f"{place}.{key}", why)
    where.known(item, place, ("name", "help", "labels", *_UNSUPPORTED_COUNTER))
    name = _metric_name(item, place, where)
    return Counter(name=name, help=_help(item, place, where), labels=_labels(item, place, where))


def _histogram(item, place: str, where: _Where) -> Histogram:
    where.mapping(item, place)
    where.known(item, place, ("name", "help", "labels", "bucket_type", "bucket_min", "bucket_max",
                              "bucket_keys", "bucket_multiplier"))
    name = _metric_name(item, place, where)
    bucket_type = item.get("bucket_type")
    if bucket_type not in BUCKET_TYPES:
        raise where.error(f"{place}.bucket_type", f"{bucket_type!r} is not one of {', '.join(BUCKET_TYPES)}")
    multiplier = item.get("bucket_multiplier", 1)
    multiplier = 1 if multiplier is None else _float(multiplier, f"{place}.bucket_multiplier", where)
    labels = _labels(item, place, where)
    if not labels:
        raise where.error(f"{place}.labels", "a histogram needs at least one label: the last is the bucket")
    hist = Histogram(name=name, help=_help(item, place, where), labels=labels, bucket_type=bucket_type,
                     bucket_multiplier=float(multiplier) or 1.0)
    if bucket_type == "fixed":
        keys = item.get("bucket_keys")
        if not isinstance(keys, list) or not keys:
            raise where.error(f"{place}.bucket_keys", "a fixed histogram needs a list of bucket keys")
        keys = [_float(key, f"{place}.bucket_keys[{j}]", where) for j, key in enumerate(keys)]
        keys = [int(key) if key == int(key) else key for key in keys]
        return Histogram(**{**hist.__dict__, "bucket_keys": tuple(keys)})
    bounds = {}
    for key in ("bucket_min", "bucket_max"):
        value = item.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int):
            raise where.error(f"{place}.{key}", f"{value!r} is not an integer")
        bounds[key] = value
    if bounds["bucket_max"] <= bounds["bucket_min"]:
        raise where.error(place, f"bucket_max ({bounds['bucket_max']}) must be above bucket_min "
                          f"({bounds['bucket_min']})")
    return Histogram(**{**hist.__dict__, **bounds})


def _float(value, place: str, where: _Where) -> float:
    """A number; also text such as ``1e-06``, which YAML 1.1 (PyYAML) reads as a string but
    Go's YAML, and so ebpf_exporter, reads as a float."""
    if isinstance(value, bool):
        raise where.error(place, f"{value!r} is not a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise where.error(place, f"{value!r} is not a number") from None


def _metric_name(item, place: str, where: _Where) -> str:
    name = item.get("name")
    if not isinstance(name, str) or not _METRIC_NAME.match(name):
        raise where.error(f"{place}.name", f"{name!r} is not a valid metric name")
    return name


def _help(item, place: str, where: _Where) -> str:
    text = item.get("help", "")
    if text is None:
        return ""
    return where.string(text, f"{place}.help")


def _labels(item, place: str, where: _Where) -> tuple:
    from .decoders import check_decoder

    labels = item.get("labels") or []
    where.sequence(labels, f"{place}.labels")
    out = []
    for i, label in enumerate(labels):
        lplace = f"{place}.labels[{i}]"
        where.mapping(label, lplace)
        where.known(label, lplace, ("name", "size", "padding", "decoders"))
        name = label.get("name")
        if not isinstance(name, str) or not _LABEL_NAME.match(name) or name.startswith("__"):
            raise where.error(f"{lplace}.name", f"{name!r} is not a valid label name")
        if any(existing.name == name for existing in out):
            raise where.error(f"{lplace}.name", f"label {name!r} is defined twice")
        size, padding = label.get("size"), label.get("padding", 0) or 0
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise where.error(f"{lplace}.size", f"{size!r}: the size must be a positive number of bytes")
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise where.error(f"{lplace}.padding", f"{padding!r} is not a number of bytes")
        decoders = label.get("decoders") or []
        where.sequence(decoders, f"{lplace}.decoders")
        if not decoders:
            raise where.error(f"{lplace}.decoders", "a label needs at least one decoder")
        chain = []
        for j, dec in enumerate(decoders):
            dplace = f"{lplace}.decoders[{j}]"
            where.mapping(dec, dplace)
            where.known(dec, dplace, ("name", "static_map", "allow_unknown", "regexps"))
            decoder = Decoder(name=str(dec.get("name")),
                              static_map={str(k): str(v) for k, v in (dec.get("static_map") or {}).items()},
                              allow_unknown=bool(dec.get("allow_unknown", False)),
                              regexps=tuple(str(r) for r in (dec.get("regexps") or ())))
            why = check_decoder(decoder, size)
            if why:
                raise where.error(dplace, why)
            chain.append(decoder)
        out.append(Label(name=name, size=size, decoders=tuple(chain), padding=padding))
    return tuple(out)


class _Where:
    """Builds the messages: ``FILE: PLACE: WHY``."""

    def __init__(self, path: str):
        self.path = path

    def error(self, place: str, why: str) -> ConfigError:
        return ConfigError(f"{self.path}: {place}: {why}" if place else f"{self.path}: {why}")

    def mapping(self, value, place: str) -> None:
        if not isinstance(value, dict):
            raise self.error(place, f"expected a mapping, got {type(value).__name__}")

    def sequence(self, value, place: str) -> None:
        if not isinstance(value, list):
            raise self.error(place, f"expected a list, got {type(value).__name__}")

    def string(self, value, place: str) -> str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise self.error(place, f"expected text, got {type(value).__name__}")
        return str(value)

    def known(self, value: dict, place: str, keys) -> None:
        for key in value:
            if key not in keys:
                prefix = f"{place}." if place else ""
                raise self.error(f"{prefix}{key}", f"unknown key (expected one of: {', '.join(keys)})")
