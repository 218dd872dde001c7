"""pybpftrace --metrics without a kernel: label names from key expressions, histogram ``le``
bounds, and the exposition text of each map kind."""
import pytest

pytest.importorskip("prometheus_client")

from prometheus_client import CollectorRegistry, generate_latest

from ebpfpy.bpftrace import metrics
from ebpfpy.bpftrace.output.values import Avg, Hist, LHist, MapData, Stack, Stats
from ebpfpy.bpftrace.parser import parse
from ebpfpy.exporter.serve import ServeError, parse_address


def names(source, name, parts):
    return metrics.label_names(parse(source), name, parts)


def test_labels_are_named_after_simple_key_expressions():
    src = "t:syscalls:sys_enter_openat { @[comm, pid] = count(); @f[str(args->filename)] = count(); " \
          "$fd = 3; @v[$fd, (uint32)tid] = sum(1); @x[pid + 1, cpu] = count(); }"
    assert names(src, "@", 2) == ["comm", "pid"]
    assert names(src, "@f", 1) == ["filename"]
    assert names(src, "@v", 2) == ["fd", "tid"]
    assert names(src, "@x", 2) == ["key0", "cpu"]


def test_labels_fall_back_to_keyN_when_uses_disagree_or_names_clash():
    src = "BEGIN { @a[pid] = count(); @a[tid] = count(); @b[pid, pid] = count(); @c[$le] = count(); }"
    assert names(src, "@a", 1) == ["key0"]
    assert names(src, "@b", 2) == ["pid", "key1"]
    assert names(src, "@c", 1) == ["key0"]  # "le" belongs to histograms


def test_metric_names():
    assert metrics.metric_name("@calls") == "bpftrace_calls"
    assert metrics.metric_name("@") == "bpftrace_map"


def test_hist_le_is_the_largest_integer_of_each_bucket():
    assert [metrics.hist_bounds(i) for i in (0, 1, 2, 3, 4, 12)] == [-1, 0, 1, 3, 7, 2047]
    assert metrics.hist_bounds(33) == float("inf")
    lh = LHist.of(0, 100, 10, 5)
    assert [metrics.lhist_bounds(lh, i) for i in (0, 1, 10, 11)] == [-1, 9, 99, float("inf")]


def test_cumulative_buckets_of_a_hist():
    hist = Hist.of(0, 1, 2, 3, 5, 100)
    assert metrics.cumulative_buckets(hist, 1, 8) == [
        ("0", 1), ("1", 2), ("3", 4), ("7", 5), ("15", 5), ("31", 5), ("63", 5), ("127", 6), ("+Inf", 6)]


def exposition(program, *maps):
    collector = metrics.ScriptCollector(lambda: list(maps), program)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry).decode(), collector


def test_each_map_kind_as_prometheus_reads_it():
    program = parse("BEGIN { @calls[comm] = count(); @total = sum(1); @lo = min(1); @mean[pid] = avg(1); "
                    "@st = stats(1); @lat[comm] = hist(1); @lin = lhist(1, 0, 30, 10); @name[pid] = comm; "
                    "@k[kstack] = count(); @n = 5; }")
    text, _ = exposition(
        program,
        MapData("@calls", "count", [(("bash",), 3), (("cat",), 1)]),
        MapData("@total", "sum", [((), -4)], keyed=False),
        MapData("@lo", "min", [((), 2)], keyed=False),
        MapData("@mean", "avg", [((7,), Avg(2, 5))]),
        MapData("@st", "stats", [((), Stats(4, 10))], keyed=False),
        MapData("@lat", "hist", [(("bash",), Hist.of(1, 2, 3)), (("cat",), Hist.of(0))]),
        MapData("@lin", "lhist", [((), LHist.of(0, 30, 10, 5, 15, 40))], keyed=False),
        MapData("@name", "str", [((7,), "bash")]),
        MapData("@k", "count", [((Stack("\n        f1\n        f2\n"),), 2)]),
        MapData("@n", "int", [((), 5)], keyed=False),
    )
    lines = set(text.splitlines())
    assert "# TYPE bpftrace_calls_total counter" in lines
    assert 'bpftrace_calls_total{comm="bash"} 3.0' in lines
    assert "# TYPE bpftrace_total gauge" in lines and "bpftrace_total -4.0" in lines
    assert "bpftrace_lo 2.0" in lines and "bpftrace_n 5.0" in lines
    assert 'bpftrace_mean{pid="7"} 2.0' in lines  # avg as bpftrace prints it: 5 // 2
    assert "# TYPE bpftrace_st summary" in lines
    assert "bpftrace_st_count 4.0" in lines and "bpftrace_st_sum 10.0" in lines
    # every key shows the same buckets, from 0 up to the highest any key used
    assert 'bpftrace_lat_bucket{comm="bash",le="0"} 0.0' in lines
    assert 'bpftrace_lat_bucket{comm="bash",le="1"} 1.0' in lines
    assert 'bpftrace_lat_bucket{comm="bash",le="3"} 3.0' in lines
    assert 'bpftrace_lat_bucket{comm="cat",le="3"} 1.0' in lines
    assert 'bpftrace_lat_bucket{comm="bash",le="+Inf"} 3.0' in lines
    assert 'bpftrace_lat_count{comm="cat"} 1.0' in lines
    assert not any(line.startswith("bpftrace_lat_sum") for line in lines)
    assert 'bpftrace_lin_bucket{le="-1"} 0.0' in lines
    assert 'bpftrace_lin_bucket{le="9"} 1.0' in lines and 'bpftrace_lin_bucket{le="29"} 2.0' in lines
    assert 'bpftrace_lin_bucket{le="+Inf"} 3.0' in lines
    assert not any("bpftrace_name" in line for line in lines)  # strings have no number
    assert any(line.startswith('bpftrace_k_total{kstack="') and line.endswith(" 2.0") for line in lines)


def test_histogram_buckets_never_shrink_between_scrapes():
    state = {"hist": Hist.of(1000)}
    collector = metrics.ScriptCollector(lambda: [MapData("@h", "hist", [((), state["hist"])], keyed=False)])
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    assert 'bpftrace_h_bucket{le="1023"} 1.0' in generate_latest(registry).decode()
    state["hist"] = Hist.of(1)
    assert 'bpftrace_h_bucket{le="1023"} 1.0' in generate_latest(registry).decode()
    state["hist"] = Hist.of(-5)
    assert 'bpftrace_h_bucket{le="-1"} 1.0' in generate_latest(registry).decode()


def test_not_running_means_no_samples():
    text, _ = exposition(None)
    assert "bpftrace_" not in text
    assert list(metrics.ScriptCollector(lambda: None).collect()) == []


@pytest.mark.parametrize("text, expected", [(":9090", ("", 9090)), ("127.0.0.1:80", ("127.0.0.1", 80)),
                                            ("[::1]:8080", ("::1", 8080)), ("localhost:0", ("localhost", 0))])
def test_listen_addresses(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["9090", ":http", ":70000", ""])
def test_bad_listen_addresses(text):
    with pytest.raises(ServeError):
        parse_address(text)
