"""ebpf_exporter configs to metrics, without a kernel: every decoder, every bucket type, the
config checks, and the text Prometheus reads for a config over known map entries."""
import socket
import struct
import sys

import pytest

pytest.importorskip("prometheus_client")
pytest.importorskip("yaml")

from prometheus_client import CollectorRegistry, generate_latest

from ebpfpy.exporter import decoders as dec
from ebpfpy.exporter.config import ConfigError, Decoder, Label, load_configs, parse_config
from ebpfpy.exporter.metrics import (
    counter_family,
    counter_series,
    go_float,
    histogram_family,
    histogram_series,
    transform_histogram,
)

ORDER = sys.byteorder


def u(value, size=8):
    return value.to_bytes(size, ORDER)


def chain(*specs):
    return tuple(Decoder(**s) if isinstance(s, dict) else Decoder(name=s) for s in specs)


class FakeSymbols:
    def lookup(self, addr):
        table = [(0x1000, "start_kernel"), (0x2000, "do_sys_open")]
        best = None
        for base, name in table:
            if base <= addr:
                best = (name, addr - base)
        return best


def decode(data, *specs, **kwargs):
    return dec.Decoders(kernel_symbols=FakeSymbols(), **kwargs).decode(data, chain(*specs))


# -- decoders -------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 4, 8])
def test_uint_reads_each_width_in_host_order(size):
    assert decode(u(200, size), "uint") == "200"


def test_uint_of_an_odd_width_is_an_error():
    with pytest.raises(dec.DecodeError, match="3 bytes"):
        decode(b"\1\2\3", "uint")


def test_string_stops_at_the_first_nul_and_hex_shows_every_byte():
    assert decode(b"bash\0junk\0\0", "string") == "bash"
    assert decode(b"\x01\xab", "hex") == "01ab"


def test_ksym_and_kstack_name_kernel_addresses():
    assert decode(u(0x2010), "ksym") == "do_sys_open"
    assert decode(u(0x10), "ksym") == "unknown_addr:0x10"
    stack = u(0x2004) + u(0x1008) + u(0x10) + u(0) + u(0x2000)
    assert decode(stack, "kstack") == "do_sys_open\nstart_kernel\n??"


def test_inet_ip_reads_v4_v6_and_v4_mapped():
    assert decode(socket.inet_aton("10.1.2.3"), "inet_ip") == "10.1.2.3"
    assert decode(socket.inet_pton(socket.AF_INET6, "2001:db8::1"), "inet_ip") == "2001:db8::1"
    assert decode(socket.inet_pton(socket.AF_INET6, "::ffff:1.1.1.1"), "inet_ip") == "1.1.1.1"
    with pytest.raises(dec.DecodeError):
        decode(b"\1\2\3", "inet_ip")


def test_majorminor_names_a_kernel_dev_t_from_partitions(tmp_path):
    parts = tmp_path / "partitions"
    parts.write_text("major minor  #blocks  name\n\n 259        0  1000 nvme0n1\n   8        1  500 sda1\n")
    assert decode(u((259 << 20) | 0, 4), "majorminor", partitions=str(parts)) == "nvme0n1"
    assert decode(u((8 << 20) | 1, 4), "majorminor", partitions=str(parts)) == "sda1"
    assert decode(u((9 << 20) | 7, 4), "majorminor", partitions=str(parts)) == "unknown:9:7"


def test_cgroup_ids_are_directory_inodes(tmp_path):
    child = tmp_path / "system.slice" / "ssh.service"
    child.mkdir(parents=True)
    ino = child.stat().st_ino
    assert decode(u(ino), "cgroup", cgroup_root=str(tmp_path)) == str(child)
    assert decode(u(1), "cgroup", cgroup_root=str(tmp_path)) == "unknown_cgroup_id:1"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="x86-64 Linux syscall table")
def test_syscall_errno_and_ifname_read_numbers_after_uint():
    from ebpfpy.attach.syscalls import syscall_numbers

    numbers = syscall_numbers()
    if numbers:
        assert decode(u(numbers["getpid"]), "uint", "syscall") == "getpid"
    assert decode(u(99999), "uint", "syscall") == "unknown_syscall:99999"
    assert decode(u(2), "uint", "errno") == "ENOENT"
    index, name = socket.if_nameindex()[0]
    assert decode(u(index, 4), "uint", "ifname") == name
    with pytest.raises(dec.DecodeError, match="uint decoder before"):
        decode(b"\x05", "syscall")


def test_static_map_names_values_and_marks_the_unknown():
    smap = {"name": "static_map", "static_map": {"1": "read", "2": "write"}}
    assert decode(u(1, 1), "uint", smap) == "read"
    assert decode(u(3, 1), "uint", smap) == "unknown:3"
    assert decode(u(3, 1), "uint", {**smap, "allow_unknown": True}) == "3"


def test_regexp_keeps_matches_and_drops_the_label_set():
    rx = {"name": "regexp", "regexps": ("^systemd-journal$", "^syslog")}
    labels = (Label("command", 16, chain("string", rx)),)
    d = dec.Decoders()
    assert d.decode_key(b"syslog-ng".ljust(16, b"\0"), labels) == ("syslog-ng",)
    assert d.decode_key(b"bash".ljust(16, b"\0"), labels) is None


def test_dname_reads_dns_wire_format():
    assert decode(b"\x07example\x03com\x00\x00\x00", "string", "dname") == "example.com"


def test_pci_decoders_read_pci_ids(tmp_path):
    ids = tmp_path / "pci.ids"
    ids.write_text("# comment\n8086  Intel Corporation\n\t1000  82542 Gigabit Ethernet Controller (Fiber)\n"
                   "C 02  Network controller\n\t00  Ethernet controller\n")
    d = dec.Decoders()
    d._pci = dec.parse_pci_ids(str(ids))
    assert d.decode(u(0x8086, 2), chain("uint", "pci_vendor")) == "Intel Corporation"
    assert d.decode(u(0x80861000, 4), chain("uint", "pci_device")) == "82542 Gigabit Ethernet Controller (Fiber)"
    assert d.decode(u(0x02, 1), chain("uint", "pci_class")) == "Network controller"
    assert d.decode(u(0x0200, 2), chain("uint", "pci_subclass")) == "Ethernet controller"


def test_labels_must_cover_the_key_with_paddings():
    labels = (Label("dev", 4, chain("uint")), Label("op", 1, chain("uint"), padding=3), Label("slot", 8, chain("uint")))
    key = u(7, 4) + b"\x02\0\0\0" + u(5)
    assert dec.Decoders().decode_key(key, labels) == ("7", "2", "5")
    with pytest.raises(dec.DecodeError, match="the key is 16 bytes, but the labels' sizes add up to 8"):
        dec.Decoders().decode_key(key, labels[:2])


# -- config checks --------------------------------------------------------------------------------


def config(text, name="t"):
    import yaml

    return parse_config(yaml.safe_load(text), name, "t.yaml", "t.bpf.o")


@pytest.mark.parametrize("text, message", [
    ("metrics: {counters: [{name: x_total, labels: [{name: a, size: 8, decoders: [{name: nope}]}]}]}",
     "unknown decoder 'nope'"),
    ("metrics: {counters: [{name: x_total, labels: [{name: a, size: 8, decoders: [{name: kube_pod_name}]}]}]}",
     "not supported by ebpfpy"),
    ("metrics: {counters: [{name: x_total, labels: [{name: a, decoders: [{name: uint}]}]}]}",
     "labels[0].size: None: the size must be a positive number"),
    ("metrics: {counters: [{name: x_total, labels: [{name: a, size: 8}]}]}", "needs at least one decoder"),
    ("metrics: {counters: [{name: x_total, perf_event_array: true}]}", "perf_event_array maps are not supported"),
    ("metrics: {histograms: [{name: h, bucket_type: log, labels: [{name: b, size: 8, decoders: [{name: uint}]}]}]}",
     "'log' is not one of exp2, exp2zero, linear, fixed"),
    ("metrics: {histograms: [{name: h, bucket_type: exp2, bucket_min: 5, bucket_max: 5, "
     "labels: [{name: b, size: 8, decoders: [{name: uint}]}]}]}", "must be above bucket_min"),
    ("metrics: {histograms: [{name: h, bucket_type: fixed, labels: [{name: b, size: 8, decoders: [{name: uint}]}]}]}",
     "needs a list of bucket keys"),
    ("metrics: {histograms: [{name: h, bucket_type: exp2, bucket_max: 3}]}", "needs at least one label"),
    ("metrics: {counters: [{name: 'bad name'}]}", "is not a valid metric name"),
    ("metrics: {countres: []}", "metrics.countres: unknown key"),
    ("tracing: {}", "tracing spans"),
    ("metrics: [1, 2]", "metrics: expected a mapping"),
    ("metrics: {counters: [{name: a_total}, {name: a_total}]}", "defined twice"),
    ("metrics: {counters: [{name: x_total, labels: [{name: a, size: 8, decoders: "
     "[{name: regexp, regexps: ['(']}]}]}]}", "regexp '('"),
])
def test_config_mistakes_are_one_clear_line(text, message):
    with pytest.raises(ConfigError) as info:
        config(text)
    assert message in str(info.value) and str(info.value).startswith("t.yaml: ")
    assert "\n" not in str(info.value)


def test_load_configs_reads_yaml_files_and_reports_bad_ones(tmp_path):
    (tmp_path / "good.yaml").write_text("metrics:\n  counters:\n    - name: a_total\n      help: A\n")
    (tmp_path / "bad.yaml").write_text("metrics: [unclosed\n")
    [good] = load_configs(str(tmp_path), "good")
    assert good.object_path == str(tmp_path / "good.bpf.o") and good.counters[0].help == "A"
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_configs(str(tmp_path), "good,bad")
    with pytest.raises(ConfigError, match="No such file"):
        load_configs(str(tmp_path), "missing")
    with pytest.raises(ConfigError, match="not a directory"):
        load_configs(str(tmp_path / "nope"), "good")


# -- bucket types ---------------------------------------------------------------------------------


def hist_config(bucket_type, **extra):
    lines = [f"bucket_type: {bucket_type}"] + [f"{k}: {v}" for k, v in extra.items()]
    return config("metrics:\n  histograms:\n    - name: lat_seconds\n      help: latency\n"
                  + "".join(f"      {line}\n" for line in lines)
                  + "      labels:\n        - {name: op, size: 4, decoders: [{name: uint}, "
                  "{name: static_map, static_map: {1: read, 2: write}}]}\n"
                  "        - {name: bucket, size: 4, decoders: [{name: uint}]}\n").histograms[0]


def test_exp2_buckets_are_powers_of_two_times_the_multiplier_with_the_sum_key():
    hist = hist_config("exp2", bucket_min=0, bucket_max=3, bucket_multiplier=0.5)
    buckets, count, total = transform_histogram(hist, {0: 1, 2: 2, 3: 4, 4: 100})
    assert buckets == [(0.5, 1), (1.0, 1), (2.0, 3), (4.0, 7)]
    assert (count, total) == (7, 50.0)


def test_exp2zero_starts_with_zero_and_shifts_the_rest():
    hist = hist_config("exp2zero", bucket_min=0, bucket_max=3)
    buckets, count, _ = transform_histogram(hist, {0: 5, 1: 1, 3: 1})
    assert buckets == [(0.0, 5), (1.0, 6), (2.0, 6), (4.0, 7)] and count == 7


def test_linear_buckets_multiply_the_key():
    hist = hist_config("linear", bucket_min=1, bucket_max=4, bucket_multiplier=10)
    buckets, count, total = transform_histogram(hist, {1: 1, 4: 2, 0: 9})
    assert buckets == [(10.0, 1), (20.0, 1), (30.0, 1), (40.0, 3)]
    assert (count, total) == (3, 0.0)  # key 0 is outside [min, max]; no sum key filled


def test_fixed_buckets_use_the_listed_keys_and_the_key_after_the_last_for_the_sum():
    hist = hist_config("fixed", bucket_keys="[1, 5, 10]", bucket_multiplier=0.001)
    buckets, count, total = transform_histogram(hist, {1: 2, 10: 1, 11: 300, 7: 50})
    assert buckets == [(0.001, 2), (0.005, 2), (0.01, 3)] and count == 3
    assert total == pytest.approx(0.3)


def test_go_float_writes_le_as_ebpf_exporter_does():
    assert [go_float(v) for v in (1.0, 2.0, 1e-06, 0.000128, 134.217728, 0.0, float("inf"), 1e21)] == \
        ["1", "2", "1e-06", "0.000128", "134.217728", "0", "+Inf", "1e+21"]


# -- a config over known entries, as Prometheus reads it -------------------------------------------


def exposition(*families):
    class Fixed:
        def collect(self):
            return list(families)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed())
    return generate_latest(registry).decode()


def test_counters_with_labels_percpu_cpu_label_and_exact_names():
    cfg = config("""
metrics:
  counters:
    - name: calls_total
      help: Calls
      labels:
        - {name: comm, size: 8, decoders: [{name: string}]}
        - {name: op, size: 8, decoders: [{name: uint}, {name: static_map, static_map: {1: read}}]}
    - name: per_cpu_total
      help: Per CPU
      labels:
        - {name: comm, size: 8, decoders: [{name: string}]}
        - {name: cpu, size: 2, decoders: [{name: uint}]}
    - name: bytes
      help: No _total suffix
      labels: []
""")
    calls, percpu, plain = cfg.counters
    d = dec.Decoders()
    entries = [(b"bash\0\0\0\0" + u(1), 3), (b"cat\0\0\0\0\0" + u(2), [1, 2]), (b"sh\0\0\0\0\0\0" + u(1), 5)]
    text = exposition(counter_family(calls, counter_series(calls, entries, d)),
                      counter_family(percpu, counter_series(percpu, [(b"bash\0\0\0\0", [4, 6])], d)),
                      counter_family(plain, counter_series(plain, [(b"", 12)], d)))
    assert 'ebpf_exporter_calls_total{comm="bash",op="read"} 3.0' in text
    assert 'ebpf_exporter_calls_total{comm="cat",op="unknown:2"} 3.0' in text  # per-CPU cells summed
    assert 'ebpf_exporter_per_cpu_total{comm="bash",cpu="0"} 4.0' in text
    assert 'ebpf_exporter_per_cpu_total{comm="bash",cpu="1"} 6.0' in text
    assert "# TYPE ebpf_exporter_calls_total counter" in text
    assert "\nebpf_exporter_bytes 12.0" in text  # the exact name, typed unknown


def test_histogram_groups_keys_by_labels_and_backfills_buckets():
    hist = hist_config("exp2", bucket_min=0, bucket_max=2, bucket_multiplier=0.000001)
    entries = [(u(1, 4) + u(1, 4), 2), (u(1, 4) + u(2, 4), 3), (u(2, 4) + u(0, 4), 1), (u(1, 4) + u(3, 4), 7)]
    text = exposition(histogram_family(hist, histogram_series(hist, entries, dec.Decoders())))
    assert "# TYPE ebpf_exporter_lat_seconds histogram" in text
    assert 'ebpf_exporter_lat_seconds_bucket{le="1e-06",op="read"} 0.0' in text
    assert 'ebpf_exporter_lat_seconds_bucket{le="2e-06",op="read"} 2.0' in text
    assert 'ebpf_exporter_lat_seconds_bucket{le="4e-06",op="read"} 5.0' in text
    assert 'ebpf_exporter_lat_seconds_bucket{le="+Inf",op="read"} 5.0' in text
    assert 'ebpf_exporter_lat_seconds_count{op="read"} 5.0' in text
    assert 'ebpf_exporter_lat_seconds_sum{op="read"} 7e-06' in text
    assert 'ebpf_exporter_lat_seconds_bucket{le="1e-06",op="write"} 1.0' in text


def test_a_bucket_label_that_is_no_number_is_an_error():
    from ebpfpy.exporter.metrics import BucketError

    hist = config("metrics:\n  histograms:\n    - {name: h, bucket_type: linear, bucket_max: 2, labels: "
                  "[{name: bucket, size: 4, decoders: [{name: string}]}]}\n").histograms[0]
    with pytest.raises(BucketError, match="not a number"):
        histogram_series(hist, [(b"ab\0\0", 1)], dec.Decoders())


def test_struct_layout_helper_matches_ebpf_exporter_padding_rules():
    # struct { u32 dev; u8 op; u64 slot; }: 4 + (1 + 3 padding) + 8
    key = struct.pack("=IB3xQ", 259 << 20, 2, 5)
    labels = (Label("dev", 4, chain("uint")), Label("op", 4, chain("uint")), Label("slot", 8, chain("uint")))
    assert dec.Decoders().decode_key(key, labels) == (str(259 << 20), "2", "5")
