"""Prometheus scrapes our endpoints for real: Debian's ``prometheus`` is started with a
temporary config on a free port, scrapes ``pybpftrace --metrics`` and ``ebpfpy exporter``
every second while a workload with known counts runs (N getpid() calls, N calls of a
function under a uprobe), and PromQL through its HTTP API must give those counts. Every
wait is on a condition with a deadline; Prometheus and our servers are stopped afterwards
and the programs the exporter loaded must be gone from the kernel."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

import pytest
from helpers import write_vmlinux_h
from test_attach_common import compile_c

from ebpfpy.sys import bpf
from ebpfpy.sys.errors import BPFError

pytest.importorskip("prometheus_client")
pytest.importorskip("yaml")

pytestmark = [pytest.mark.kernel, pytest.mark.slow,
              pytest.mark.skipif(os.uname().machine != "x86_64",
                                 reason="getpid is syscall 39 and work()'s argument is in rdi on x86-64")]
GETPID_NR = 39

HERE = os.path.dirname(__file__)
OBJ_SRC = os.path.join(HERE, "..", "bpf_objects")
N = 1000


def wait_until(condition, timeout=60.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    """A throwaway Prometheus scraping one target every second."""

    def __init__(self, tmp, target: str):
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.skip("Debian's prometheus package is not installed")
        config = tmp / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                          f"scrape_configs:\n  - job_name: ebpfpy\n    static_configs:\n"
                          f"      - targets: ['{target}']\n")
        self.port = free_port()
        self.log = open(tmp / "prometheus.log", "w+")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=tmp)
        wait_until(self._ready, 60, "prometheus to be ready")

    def _ready(self):
        if self.proc.poll() is not None:
            self.log.seek(0)
            pytest.fail(f"prometheus exited: {self.log.read()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def query(self, promql: str) -> dict:
        """{labels as a frozenset of items: value} of an instant query."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return {frozenset((k, v) for k, v in row["metric"].items() if k not in ("job", "instance")):
                float(row["value"][1]) for row in body["data"]["result"]}

    def value(self, promql: str):
        """The value of a query with one result, or None."""
        result = self.query(promql)
        return next(iter(result.values())) if len(result) == 1 else None

    def wait_value(self, promql: str, expected: float, timeout=60.0) -> None:
        wait_until(lambda: self.value(promql) == expected, timeout, f"{promql} == {expected} "
                   f"(last: {self.query(promql)})")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Server:
    """A subprocess serving metrics; the port comes from the line it prints on stderr."""

    def __init__(self, argv, port_pattern):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.port = None
        ready = threading.Event()

        def read():
            for line in self.proc.stderr:
                self.lines.append(line)
                found = re.search(port_pattern, line)
                if found and self.port is None:
                    self.port = int(found.group(1))
                    ready.set()
            ready.set()

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        ready.wait(90)
        if self.port is None:
            self.stop()
            pytest.fail("the server did not start:\n" + "".join(self.lines))

    def stop(self, sig=signal.SIGINT):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, _ = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self.reader.join(10)
        return self.proc.returncode, out


@pytest.fixture(scope="module")
def progs(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("prom_progs"))
    # unique command names: the series of this test's workload cannot mix with anything else
    return {"script": compile_c("getpid_loop.c", out, "-O2", out_name="gpl_script"),
            "exporter": compile_c("getpid_loop.c", out, "-O2", out_name="gpl_exporter"),
            "uprobe_target": compile_c("uprobe_target.c", out, "-O2")}


def test_pybpftrace_metrics_scraped_by_prometheus(tmp_path, progs):
    script = ('tracepoint:syscalls:sys_enter_getpid /comm == "gpl_script"/ { @calls[comm] = count(); '
              '@nr[comm] = lhist(args->__syscall_nr, 0, 100, 10); @st = stats(args->__syscall_nr); '
              '@top = max(args->__syscall_nr); }')
    server = Server([sys.executable, "-m", "ebpfpy.bpftrace", "--metrics", "127.0.0.1:0", "-e", script],
                    r"Serving metrics at http://[^ ]*:(\d+)/metrics")
    prom = None
    try:
        prom = Prometheus(tmp_path, f"127.0.0.1:{server.port}")
        wait_until(lambda: prom.value('up{job="ebpfpy"}') == 1, 60, "the first good scrape")
        subprocess.run([progs["script"], str(N)], check=True, timeout=60)
        prom.wait_value('bpftrace_calls_total{comm="gpl_script"}', N)
        nr = GETPID_NR
        assert prom.value('bpftrace_nr_bucket{comm="gpl_script",le="29"}') == 0
        assert prom.value('bpftrace_nr_bucket{comm="gpl_script",le="39"}') == N  # [30, 40) holds 39
        assert prom.value('bpftrace_nr_bucket{comm="gpl_script",le="+Inf"}') == N
        assert prom.value('bpftrace_nr_count{comm="gpl_script"}') == N
        assert prom.value("bpftrace_st_count") == N and prom.value("bpftrace_st_sum") == N * nr
        assert prom.value("bpftrace_top") == nr
        assert prom.value('histogram_quantile(0.5, bpftrace_nr_bucket{comm="gpl_script"})') is not None
    finally:
        if prom is not None:
            prom.stop()
        code, out = server.stop()
    assert code == 0, "".join(server.lines)
    assert f"@calls[gpl_script]: {N}" in out  # the exit output is pybpftrace's as ever
    assert not any("Traceback" in line for line in server.lines)


@pytest.fixture(scope="module")
def objects(tmp_path_factory, progs):
    """DIR with exporter_getpid.{yaml,bpf.o} and exporter_uprobe.{yaml,bpf.o}, built by clang-19."""
    if not shutil.which("clang-19"):
        pytest.skip("clang-19 is not installed")
    out = tmp_path_factory.mktemp("exporter_configs")
    write_vmlinux_h(out)
    for name, flags in (("exporter_getpid", []), ("exporter_uprobe", [f'-DTARGET="{progs["uprobe_target"]}"'])):
        subprocess.run(["clang-19", "-O2", "-g", "-target", "bpf", *flags, "-I", str(out), "-I", OBJ_SRC, "-c",
                        os.path.join(OBJ_SRC, name + ".bpf.c"), "-o", str(out / (name + ".bpf.o"))], check=True)
        shutil.copy(os.path.join(OBJ_SRC, name + ".yaml"), out / (name + ".yaml"))
    return str(out)


def _prog_exists(prog_id: int) -> bool:
    try:
        bpf.prog_get_fd_by_id(prog_id).close()
        return True
    except BPFError:
        return False


@pytest.mark.btf
@pytest.mark.clang
@pytest.mark.uprobes
def test_ebpf_exporter_configs_scraped_by_prometheus(tmp_path, progs, objects):
    stats = bpf.enable_stats()  # run counts and times accumulate while this fd is open
    server = Server([sys.executable, "-c", "import sys; from ebpfpy.cli import main; sys.exit(main())",
                     "exporter", f"--config.dir={objects}", "--config.names=exporter_getpid,exporter_uprobe",
                     "--web.listen-address=127.0.0.1:0", "--log.no-timestamps"],
                    r"Listening on .* \(port (\d+)\)")
    prom = None
    prog_ids = []
    try:
        prom = Prometheus(tmp_path, f"127.0.0.1:{server.port}")
        wait_until(lambda: prom.value('up{job="ebpfpy"}') == 1, 60, "the first good scrape")
        info = wait_until(lambda: prom.query("ebpf_exporter_ebpf_program_info"), 30, "program info")
        prog_ids = [int(dict(labels)["id"]) for labels in info]
        assert {dict(labels)["program"] for labels in info} == {"count_getpid", "count_work"}
        assert prom.query("ebpf_exporter_enabled_configs") == {
            frozenset({("__name__", "ebpf_exporter_enabled_configs"), ("name", "exporter_getpid")}): 1,
            frozenset({("__name__", "ebpf_exporter_enabled_configs"), ("name", "exporter_uprobe")}): 1}
        assert set(prom.query("ebpf_exporter_ebpf_program_attached").values()) == {1}

        subprocess.run([progs["exporter"], str(N)], check=True, timeout=60)
        subprocess.run([progs["uprobe_target"], str(N)], check=True, timeout=60, capture_output=True)

        prom.wait_value('ebpf_exporter_getpid_calls_total{comm="gpl_exporter"}', N)
        prom.wait_value('sum(ebpf_exporter_getpid_calls_percpu_total{comm="gpl_exporter"})', N)
        hist = 'ebpf_exporter_getpid_syscall_nr'
        prom.wait_value(f'{hist}_count{{comm="gpl_exporter"}}', N)
        assert prom.value(f'{hist}_bucket{{comm="gpl_exporter",le="32"}}') == 0
        assert prom.value(f'{hist}_bucket{{comm="gpl_exporter",le="64"}}') == N  # 39 is in (32, 64]
        assert prom.value(f'{hist}_bucket{{comm="gpl_exporter",le="1024"}}') == N
        assert prom.value(f'{hist}_sum{{comm="gpl_exporter"}}') == GETPID_NR * N  # the sum key, past bucket_max
        prom.wait_value("sum(ebpf_exporter_work_calls_total)", N)
        assert prom.query("ebpf_exporter_work_calls_total") == {
            frozenset({("__name__", "ebpf_exporter_work_calls_total"), ("residue", r)}): N / 4
            for r in ("zero", "one", "two", "unknown:3")}
        # the kernel's run statistics, joined to the program names as ebpf_exporter's docs do
        runs = ('ebpf_exporter_ebpf_program_run_count_total * on(id) group_left(program) '
                'ebpf_exporter_ebpf_program_info{program="count_work"}')
        wait_until(lambda: (prom.value(runs) or 0) >= N, 30, "the uprobe's run count")
        run_time = ('ebpf_exporter_ebpf_program_run_time_seconds * on(id) group_left(program) '
                    'ebpf_exporter_ebpf_program_info{program="count_getpid"}')
        wait_until(lambda: (prom.value(run_time) or 0) > 0, 30, "the tracepoint's run time")
    finally:
        stats.close()
        if prom is not None:
            prom.stop()
        code, _ = server.stop(signal.SIGTERM)
    assert code == 0, "".join(server.lines)
    assert not any("Traceback" in line for line in server.lines), "".join(server.lines)
    assert prog_ids and not any(_prog_exists(i) for i in prog_ids)  # unloaded at exit


def test_exporter_errors_are_one_line(tmp_path, objects):
    def run(*args):
        return subprocess.run([sys.executable, "-c", "import sys; from ebpfpy.cli import main; sys.exit(main())",
                               "exporter", *args], capture_output=True, text=True, timeout=60)

    res = run(f"--config.dir={tmp_path}", "--config.names=missing")
    assert res.returncode == 1 and res.stderr.startswith("ERROR: config 'missing': ") and "Traceback" not in res.stderr
    (tmp_path / "nomap.yaml").write_text("metrics:\n  counters:\n    - name: absent_total\n      help: x\n")
    shutil.copy(os.path.join(objects, "exporter_getpid.bpf.o"), tmp_path / "nomap.bpf.o")
    res = run(f"--config.dir={tmp_path}", "--config.names=nomap", "--web.listen-address=127.0.0.1:0")
    assert res.returncode == 1 and "has no map named 'absent_total'" in res.stderr, res.stderr
    (tmp_path / "size.yaml").write_text(
        "metrics:\n  counters:\n    - name: getpid_calls_total\n      labels:\n"
        "        - {name: comm, size: 8, decoders: [{name: string}]}\n")
    shutil.copy(os.path.join(objects, "exporter_getpid.bpf.o"), tmp_path / "size.bpf.o")
    res = run(f"--config.dir={tmp_path}", "--config.names=size", "--web.listen-address=127.0.0.1:0")
    assert res.returncode == 1 and "the map's key is 16 bytes, but the labels' sizes" in res.stderr, res.stderr
    res = run(f"--config.dir={objects}", "--config.names=exporter_getpid", "--config.check")
    assert res.returncode == 0 and "Config check successful" in res.stderr, res.stderr


@pytest.mark.btf
@pytest.mark.clang
def test_readme_examples_run_as_written():
    """The README's "Export to Prometheus" shell blocks, run from the repository's root."""
    root = os.path.join(HERE, "..", "..")
    for tool in ("pybpftrace", "ebpfpy", "curl", "bpftool", "clang-19"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not on PATH")
    for port in (9445, 9435):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                pytest.skip(f"port {port}, which the README uses, is taken")
    text = open(os.path.join(root, "README.md")).read()
    section = text[text.index("## Export to Prometheus"):text.index("## Tests\n")]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) == 2
    script = "set -m\n" + "".join(block + "wait\n" for block in blocks)
    res = subprocess.run(["bash", "-c", script], cwd=root, capture_output=True, text=True, timeout=180)
    out = res.stdout
    assert re.search(r'^bpftrace_reads_total\{comm="cat"\} [1-9]', out, re.M), (out, res.stderr)
    assert re.search(r'^bpftrace_sizes_bucket\{le="0"\} ', out, re.M)
    assert re.search(r'^ebpf_exporter_getpid_calls_total\{comm="python3"\} ([5-9]|\d\d)', out, re.M), (out, res.stderr)
    assert re.search(r'^ebpf_exporter_getpid_syscall_nr_bucket\{comm="python3",le="64"\} ', out, re.M)
    assert "Traceback" not in res.stderr
