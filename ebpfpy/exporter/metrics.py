"""Map entries -> ebpf_exporter's metrics: labelled counters and backfilled histograms.

Pure functions over ``(key bytes, value)`` pairs (a value is an int, or a list of ints
for per-CPU maps), so the whole YAML-to-metrics mapping is tested without a kernel.

Counters: each key's labels through the decoders, its value summed over CPUs (or, for a
per-CPU map whose last label is named ``cpu``, one series per CPU with that label set to the
CPU number, as ebpf_exporter does). Keys that decode to the same labels add up.

Histograms: the last label is the bucket (its decoded text read as an integer); the other
labels group the keys. The buckets from the config are backfilled, cumulated and given their
``le`` by the bucket type, with ``bucket_multiplier`` m:

* ``exp2``: keys ``bucket_min..bucket_max``, ``le = 2**key * m``;
* ``exp2zero``: the same, but key 0 is ``le = 0`` and key k > 0 is ``le = 2**(k-1) * m``;
* ``linear``: ``le = key * m``;
* ``fixed``: the keys ``bucket_keys``, ``le = key * m``.

The key after the last bucket (``bucket_max + 1``, or the last fixed key + 1), when the
program fills it, holds the sum of the observed values, exported as ``_sum`` (times m);
otherwise ``_sum`` is 0, as ebpf_exporter reports it. ``_count`` and ``+Inf`` are the total.

Names: ``ebpf_exporter_<name>``. A counter named ``..._total`` (ebpf_exporter's convention)
is a Prometheus counter; one without the suffix keeps its exact name, typed ``unknown``,
because prometheus_client (following OpenMetrics) would otherwise rename it ``..._total``.
"""
from __future__ import annotations

import decimal

NAMESPACE = "ebpf_exporter_"


def sum_cpus(value) -> int:
    return sum(value) if isinstance(value, list) else value


def counter_series(counter, entries, decoders, cache: bool = True) -> dict[tuple, float]:
    """Label values -> value, for one counter's map entries."""
    labels = counter.labels
    per_cpu = bool(labels) and labels[-1].name == "cpu" and entries and isinstance(entries[0][1], list)
    key_labels = labels[:-1] if per_cpu else labels
    out: dict[tuple, float] = {}
    for key, value in entries:
        decoded = decoders.decode_key(key, key_labels, counter.name if cache else "")
        if decoded is None:
            continue
        if per_cpu:
            for cpu, cell in enumerate(value):
                series = (*decoded, str(cpu))
                out[series] = out.get(series, 0.0) + float(cell)
        else:
            out[decoded] = out.get(decoded, 0.0) + float(sum_cpus(value))
    return out


def bucket_keys(hist) -> list[tuple[int, float]]:
    """``(map key, le)`` of each bucket of a histogram config, in order."""
    m = hist.bucket_multiplier or 1.0
    if hist.bucket_type == "fixed":
        return [(key, key * m) for key in hist.bucket_keys]
    keys = range(hist.bucket_min, hist.bucket_max + 1)
    if hist.bucket_type == "exp2":
        return [(k, 2.0 ** k * m) for k in keys]
    if hist.bucket_type == "exp2zero":
        return [(k, 0.0 if k == 0 else 2.0 ** (k - 1) * m) for k in keys]
    return [(k, k * m) for k in keys]  # linear


def sum_key(hist):
    """The map key the program may fill with the sum of observed values."""
    if hist.bucket_type == "fixed":
        return hist.bucket_keys[-1] + 1
    return hist.bucket_max + 1


def transform_histogram(hist, counts: dict) -> tuple[list[tuple[float, float]], float, float]:
    """Per-bucket counts (map key -> count) -> (cumulative ``(le, count)`` buckets, count, sum)."""
    running = 0.0
    buckets = []
    for key, le in bucket_keys(hist):
        running += counts.get(key, 0)
        buckets.append((le, running))
    total_sum = float(counts.get(sum_key(hist), 0)) * (hist.bucket_multiplier or 1.0)
    return buckets, running, total_sum


class BucketError(Exception):
    """A histogram's bucket label that is not a number."""


def histogram_series(hist, entries, decoders, cache: bool = True) -> dict[tuple, tuple]:
    """Label values (without the bucket) -> (buckets, count, sum) for one histogram's entries."""
    grouped: dict[tuple, dict] = {}
    for key, value in entries:
        decoded = decoders.decode_key(key, hist.labels, hist.name if cache else "")
        if decoded is None:
            continue
        *labels, bucket_text = decoded
        try:
            bucket = int(bucket_text, 0)
        except ValueError:
            raise BucketError(f"histogram {hist.name!r}: bucket label {bucket_text!r} is not a number") from None
        counts = grouped.setdefault(tuple(labels), {})
        counts[bucket] = counts.get(bucket, 0) + sum_cpus(value)
    return {labels: transform_histogram(hist, counts) for labels, counts in grouped.items()}


def counter_family(counter, series: dict):
    from prometheus_client.core import CounterMetricFamily, Metric

    name = NAMESPACE + counter.name
    label_names = [label.name for label in counter.labels]
    if name.endswith("_total"):
        family = CounterMetricFamily(name, counter.help or counter.name, labels=label_names)
        for values, value in series.items():
            family.add_metric(list(values), value)
        return family
    family = Metric(name, counter.help or counter.name, "unknown")
    for values, value in series.items():
        family.add_sample(name, dict(zip(label_names, values)), value)
    return family


def go_float(value: float) -> str:
    """A float as Go's ``strconv.FormatFloat(v, 'g', -1, 64)`` writes it, which is how
    ebpf_exporter's ``le`` labels read: ``1``, ``0.000128``, ``1e-06``, ``+Inf``."""
    if value == float("inf"):
        return "+Inf"
    if value == float("-inf"):
        return "-Inf"
    if value == 0:
        return "0"
    number = decimal.Decimal(repr(float(value))).normalize()
    sign, digits, exponent = number.as_tuple()
    sci = len(digits) - 1 + exponent
    text = "".join(map(str, digits))
    if sci < -4 or sci >= 21:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        out = f"{mantissa}e{'-' if sci < 0 else '+'}{abs(sci):02d}"
    else:
        out = format(number.copy_abs(), "f")
    return ("-" if sign else "") + out


def histogram_family(hist, series: dict):
    from prometheus_client.core import HistogramMetricFamily

    family = HistogramMetricFamily(NAMESPACE + hist.name, hist.help or hist.name,
                                   labels=[label.name for label in hist.labels[:-1]])
    for values, (buckets, count, total) in series.items():
        rows = [(go_float(le), value) for le, value in buckets]
        rows.append(("+Inf", count))
        family.add_metric(list(values), rows, total)
    return family
