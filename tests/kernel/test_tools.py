"""Every ``tools/*.bt`` script, run for real with pybpftrace while the test makes the event happen.

Each test starts the tool as a user would (``pybpftrace tools/x.bt``), waits
for its header, triggers what it traces (opens a file, runs a program, sends
a signal, types into bash, connects a socket...), waits for the line that
event must produce, then ends it with SIGINT and checks the exit-time
output. Where bpftrace 0.17 is installed, the same check is run with
bpftrace as the tracer, which proves the expected lines are bpftrace's.
"""
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

pytestmark = pytest.mark.kernel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(ROOT, "tools")
PYBPFTRACE = [sys.executable, "-m", "ebpfpy.bpftrace"]
TRACERS = ["pybpftrace", pytest.param("bpftrace", marks=pytest.mark.bpftrace)]


def tool(name: str) -> str:
    return os.path.join(TOOLS, name)


class Tracer:
    """A tool running in the background; its stdout collected line by line by a thread."""

    def __init__(self, which: str, script: str, *args: str):
        self.which = which
        cmd = [*PYBPFTRACE] if which == "pybpftrace" else ["bpftrace"]
        self.proc = subprocess.Popen([*cmd, script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines: list = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout: float = 20.0) -> str:
        """The first output line matching ``pattern`` (a regex); fails with what was seen."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if regex.search(line):
                    return line
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.02)
        self._fail_for(pattern)

    def _fail_for(self, pattern: str):
        err = ""
        if self.proc.poll() is not None:
            err = self.proc.stderr.read()
        self.stop()
        seen = "".join(self.lines)
        pytest.fail(f"no line matching {pattern!r}; output (end): {seen[-1500:]!r}; stderr: {err[-1500:]!r}")

    def started(self, header: str = r"^Attaching \d+ probes?\.\.\.") -> None:
        self.wait_for(header)

    def stop(self, sig=signal.SIGINT) -> str:
        """End the tool like Ctrl-C; returns everything it printed. It must exit with status 0."""
        # bpftrace 0.17 (the reference, not what is tested here) once missed a SIGINT on a
        # loaded machine and ran on: it gets a second one; ours must stop at the first.
        for _attempt in range(2 if self.which == "bpftrace" else 1):
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=60)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"{self.which} did not stop after SIGINT")
        self._reader.join(timeout=10)
        err = self.proc.stderr.read()
        err = "".join(line for line in err.splitlines(True) if "RLIMIT_MEMLOCK" not in line)
        assert self.proc.returncode == 0, err
        return "".join(self.lines)


@pytest.fixture
def marker():
    return f"ebpfpy_{os.getpid()}_{int(time.monotonic() * 1000) % 100000}"


# -- the snoops: one line per event -------------------------------------------------------------------

@pytest.mark.parametrize("tracer", TRACERS)
def test_opensnoop(tracer, marker):
    # a short path: the tool reads at most BPFTRACE_STRLEN (64) bytes of it
    path = f"/tmp/{marker}"
    t = Tracer(tracer, tool("opensnoop.bt"))
    t.started()
    t.wait_for(r"^PID\s+COMM\s+FD ERR PATH")
    fd = os.open(path, os.O_CREAT | os.O_RDONLY, 0o600)
    os.close(fd)
    os.unlink(path)
    missing = str(path) + "_missing"
    with pytest.raises(FileNotFoundError):
        open(missing)
    line = t.wait_for(re.escape(str(path)) + "$")
    assert re.match(rf"^{os.getpid():<6} \S.{{15}} +{fd} +0 {re.escape(str(path))}$", line.rstrip("\n")), line
    line = t.wait_for(re.escape(missing) + "$")
    assert re.match(rf"^{os.getpid():<6} \S.{{15}} +-1 +2 {re.escape(missing)}$", line.rstrip("\n")), line
    t.stop()


@pytest.mark.parametrize("tracer", TRACERS)
def test_execsnoop(tracer, marker):
    t = Tracer(tracer, tool("execsnoop.bt"))
    t.started()
    t.wait_for(r"^TIME\(ms\)\s+PID\s+ARGS")
    child = subprocess.run(["/bin/true", marker], check=True)
    line = t.wait_for(re.escape(f"/bin/true {marker}"))
    assert re.match(rf"^\d+ +\d+ +/bin/true {marker}$", line.rstrip("\n")), line
    assert child.returncode == 0
    t.stop()


@pytest.mark.parametrize("tracer", TRACERS)
def test_killsnoop(tracer):
    victim = subprocess.Popen(["/bin/sleep", "30"])
    t = Tracer(tracer, tool("killsnoop.bt"))
    try:
        t.started()
        t.wait_for(r"^PID\s+COMM\s+SIG TPID\s+RESULT")
        os.kill(victim.pid, signal.SIGTERM)
        line = t.wait_for(rf" {signal.SIGTERM.value:>4} {victim.pid:<6} 0$")
        assert line.startswith(f"{os.getpid():<6} "), line
        # a signal to a pid that does not exist fails with -ESRCH (-3)
        victim.wait()
        with pytest.raises(ProcessLookupError):
            os.kill(victim.pid, signal.SIGUSR2)
        t.wait_for(rf" {signal.SIGUSR2.value:>4} {victim.pid:<6} -3$")
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    t.stop()


@pytest.mark.uprobes
@pytest.mark.skipif(not os.path.exists("/bin/bash"), reason="needs /bin/bash")
@pytest.mark.parametrize("tracer", TRACERS)
def test_bashreadline(tracer, marker):
    t = Tracer(tracer, tool("bashreadline.bt"))
    t.started()
    t.wait_for(r"^TIME\s+PID\s+COMMAND")
    pid, fd = pty.fork()
    if pid == 0:  # an interactive bash on a terminal, so it reads lines with readline()
        os.execve("/bin/bash", ["/bin/bash", "--norc", "--noprofile", "-i"], {"TERM": "dumb", "PS1": "$ "})
    try:
        os.write(fd, f"echo {marker}\nexit\n".encode())
        line = t.wait_for(rf"echo {marker}$")
        assert re.match(rf"^\d\d:\d\d:\d\d  {pid:<6} echo {marker}$", line.rstrip("\n")), line
    finally:
        _drain_pty(fd)
        os.waitpid(pid, 0)
    t.stop()


def _drain_pty(fd: int) -> None:
    deadline = time.monotonic() + 5
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready and not os.read(fd, 4096):
                break
    except OSError:
        pass
    finally:
        os.close(fd)


@pytest.mark.parametrize("tracer", TRACERS)
def test_tcpconnect(tracer):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    t = Tracer(tracer, tool("tcpconnect.bt"))
    try:
        t.started()
        t.wait_for(r"^TIME\s+PID\s+COMM\s+SADDR")
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
        client.close()
        line = t.wait_for(rf" 127\.0\.0\.1 +\d+ +127\.0\.0\.1 +{port} *$")
        assert re.match(rf"^\d\d:\d\d:\d\d {os.getpid():<6} ", line), line
    finally:
        server.close()
    t.stop()


# -- the summaries: maps at exit or per interval ----------------------------------------------------------

def test_biolatency_starts_and_stops_cleanly(tmp_path):
    t = Tracer("pybpftrace", tool("biolatency.bt"))
    t.started()
    t.wait_for("^Tracing block device I/O")
    path = tmp_path / "io"
    with open(path, "wb") as fh:  # may or may not reach a block device here (tmpfs, caches)
        fh.write(os.urandom(1 << 16))
        fh.flush()
        os.fsync(fh.fileno())
    out = t.stop()
    assert "@start" not in out  # END cleared it
    for row in re.findall(r"^\[.*\|$", out, re.MULTILINE):
        assert re.match(r"^\[\S+(, \S+\))?\]? +\d+ \|@*\s*\|$", row), row


def test_pidpersec():
    t = Tracer("pybpftrace", tool("pidpersec.bt"))
    t.started()
    t.wait_for("^Tracing new processes")
    for _ in range(3):
        subprocess.run(["/bin/true"], check=True)
    line = t.wait_for(r"^\d\d:\d\d:\d\d PIDs/sec: @: \d+$", timeout=5)
    t.stop()
    assert int(line.split()[-1]) >= 0


def test_runqlat():
    t = Tracer("pybpftrace", tool("runqlat.bt"))
    t.started()
    for _ in range(20):
        time.sleep(0.005)  # each wake-up goes through the run queue
    out = t.stop()
    assert "\n@usecs: \n" in out
    assert re.search(r"^\[\d+\S*(, \d+\S*\))?\]? +\d+ \|@+ *\|$", out, re.MULTILINE)


def test_syscall_latency():
    t = Tracer("pybpftrace", tool("syscall_latency.bt"))
    t.started()
    with open("/proc/self/stat", "rb") as fh:
        fh.read()
    out = t.stop()
    assert re.search(r"^@stats\[python[\d.]*\]: count \d+, average \d+, total \d+$", out, re.MULTILINE), out[-2000:]
    assert re.search(r"^@usecs\[python[\d.]*\]: $", out, re.MULTILINE)


def test_syscount():
    t = Tracer("pybpftrace", tool("syscount.bt"))
    t.started()
    t.wait_for("^Counting syscalls")
    for _ in range(100):
        os.getppid()
    out = t.stop()
    top_ids = out.split("Top 10 syscalls IDs:\n")[1].split("\n\nTop 10 processes:\n")
    rows = [r for r in top_ids[0].splitlines() if r]
    assert 1 <= len(rows) <= 10 and all(re.match(r"^@syscall\[\d+\]: \d+$", r) for r in rows)
    counts = [int(r.split(": ")[1]) for r in rows]
    assert counts == sorted(counts)
    # only END's print: the probes stay attached while END runs, so the exit-time
    # print after the blank lines may show @process refilled by other processes
    procs = [r for r in top_ids[1].split("\n\n\n")[0].splitlines() if r.startswith("@process[")]
    assert 1 <= len(procs) <= 10


def test_vfsstat():
    t = Tracer("pybpftrace", tool("vfsstat.bt"))
    t.started()
    t.wait_for("^Tracing file system syscalls")
    with open("/proc/self/stat", "rb") as fh:
        fh.read()
    t.wait_for(r"^\d\d:\d\d:\d\d$", timeout=5)
    t.wait_for(r"^@\[tracepoint:syscalls:sys_enter_(read|openat|close|write|newfstatat)\]: \d+$", timeout=5)
    t.stop()


# -- kprobe variants -------------------------------------------------------------------------------------

KPROBE_TOOLS = ["tcpconnect_kprobe.bt", "vfsstat_kprobe.bt"]


def _has_kprobes() -> bool:
    from ebpfpy import features

    return features.has("kprobes")


@pytest.mark.skipif(_has_kprobes(), reason="kprobes work here: see the kprobes-marked tests")
@pytest.mark.parametrize("name", KPROBE_TOOLS)
def test_kprobe_tools_say_why_they_cannot_run(name):
    res = subprocess.run([*PYBPFTRACE, tool(name)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert "kprobes are not available on this kernel (CONFIG_KPROBES is off)" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.kprobes
def test_vfsstat_kprobe():
    t = Tracer("pybpftrace", tool("vfsstat_kprobe.bt"))
    t.started()
    with open("/proc/self/stat", "rb") as fh:
        fh.read()
    t.wait_for(r"^@\[vfs_(read|open)\]: \d+$", timeout=5)
    t.stop()


@pytest.mark.kprobes
def test_tcpconnect_kprobe():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    t = Tracer("pybpftrace", tool("tcpconnect_kprobe.bt"))
    try:
        t.started()
        socket.create_connection(server.getsockname(), timeout=5).close()
        time.sleep(0.2)
    finally:
        server.close()
    out = t.stop()
    assert re.search(rf"^@connects\[python[\d.]*, {os.getpid()}\]: 1$", out, re.MULTILINE), out


def test_every_tool_has_a_test():
    tested = {"opensnoop", "execsnoop", "killsnoop", "bashreadline", "tcpconnect", "biolatency", "pidpersec",
              "runqlat", "syscall_latency", "syscount", "vfsstat", "tcpconnect_kprobe", "vfsstat_kprobe"}
    present = {os.path.splitext(n)[0] for n in os.listdir(TOOLS) if n.endswith(".bt")}
    assert present <= tested, f"untested tools: {present - tested}"
