"""Every ``tools/*.bt`` script, run for real while the test makes the event happen.

Each test starts the tool as a user would (``pybpftrace tools/x.bt``), waits
for its header, triggers what it traces (opens a file, runs a program, sends
a signal, types into bash, connects a socket...), waits for the line that
event must produce, then ends it with SIGINT and checks the exit-time
output.

The scripts in ``tools/`` are written in today's bpftrace language (0.26: ``begin``,
``args.f``, ``delete(@m, k)``...) and run with pybpftrace in 0.26 mode, its default.
bpftrace 0.17 cannot read that language, so the tools compared with it keep a copy
in 0.17's language in ``tests/kernel/tools_017/``: each such test also runs that copy
with ``pybpftrace --compat=0.17`` and, where bpftrace 0.17 is installed, with bpftrace,
which proves the expected lines are bpftrace's.
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
TOOLS_017 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tools_017")
PYBPFTRACE = [sys.executable, "-m", "ebpfpy.bpftrace"]
# tracer -> its command: pybpftrace in today's language (0.26, the default; passed explicitly since
# this suite's conftest sets PYBPFTRACE_COMPAT=0.17), in 0.17's, and bpftrace 0.17 itself
COMMANDS = {"pybpftrace": [*PYBPFTRACE, "--compat=0.26"], "pybpftrace-0.17": [*PYBPFTRACE, "--compat=0.17"],
            "bpftrace": ["bpftrace"]}
TRACERS = ["pybpftrace", "pybpftrace-0.17", pytest.param("bpftrace", marks=pytest.mark.bpftrace)]


def tool(name: str, tracer: str = "pybpftrace") -> str:
    """The script ``tracer`` runs: tools/NAME for pybpftrace in 0.26 mode, else the 0.17 copy."""
    return os.path.join(TOOLS if tracer == "pybpftrace" else TOOLS_017, name)


def modern(tracer: str) -> bool:
    """Whether ``tracer`` prints bpftrace 0.26's output (``Attached N probes`` on stderr...)."""
    return tracer == "pybpftrace"


class Tracer:
    """A tool running in the background; its stdout and stderr collected line by line by threads.

    ``which`` is a key of COMMANDS; ``name`` the tool, run from tools/ or from the 0.17 copies
    as ``tool()`` says."""

    def __init__(self, which: str, name: str, *args: str):
        self.which = which
        self.proc = subprocess.Popen([*COMMANDS[which], tool(name, which), *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list = []
        self.err_lines: list = []
        self._readers = [threading.Thread(target=self._read, args=(stream, into), daemon=True)
                         for stream, into in ((self.proc.stdout, self.lines), (self.proc.stderr, self.err_lines))]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, into: list):
        for line in stream:
            into.append(line)

    def wait_for(self, pattern: str, timeout: float = 20.0, stderr: bool = False) -> str:
        """The first output line (of stderr with ``stderr``) matching ``pattern`` (a regex); fails with
        what was seen."""
        regex = re.compile(pattern)
        lines = self.err_lines if stderr else self.lines
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(lines):
                if regex.search(line):
                    return line
            if self.proc.poll() is not None and not any(r.is_alive() for r in self._readers):
                break
            time.sleep(0.02)
        self._fail_for(pattern)

    def _fail_for(self, pattern: str):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for reader in self._readers:
            reader.join(timeout=10)
        seen, err = "".join(self.lines), "".join(self.err_lines)
        pytest.fail(f"no line matching {pattern!r}; output (end): {seen[-1500:]!r}; stderr: {err[-1500:]!r}")

    def started(self) -> None:
        """The probes are attached: 0.26 says so on stderr, 0.17 on stdout."""
        if modern(self.which):
            self.wait_for(r"^Attached \d+ probes?$", stderr=True)
        else:
            self.wait_for(r"^Attaching \d+ probes?\.\.\.$")

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
        for reader in self._readers:
            reader.join(timeout=10)
        err = "".join(line for line in self.err_lines if "RLIMIT_MEMLOCK" not in line)
        assert self.proc.returncode == 0, err
        out = "".join(self.lines)
        if self.which != "bpftrace":
            assert "Traceback" not in out + err, err
        if modern(self.which):  # 0.26: only the attach line on stderr, and nothing of 0.17's on stdout
            assert re.fullmatch(r"Attached \d+ probes?\n", err), err
            assert not re.search(r"^Attaching \d+ probes?\.\.\.$|^WARNING", out, re.MULTILINE), out[:1500]
        return out


@pytest.fixture
def marker():
    return f"ebpfpy_{os.getpid()}_{int(time.monotonic() * 1000) % 100000}"


# -- the snoops: one line per event -------------------------------------------------------------------

@pytest.mark.parametrize("tracer", TRACERS)
def test_opensnoop(tracer, marker):
    # a short path: the tool reads at most BPFTRACE_STRLEN (64) bytes of it
    path = f"/tmp/{marker}"
    t = Tracer(tracer, "opensnoop.bt")
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
    t = Tracer(tracer, "execsnoop.bt")
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
    t = Tracer(tracer, "killsnoop.bt")
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
    t = Tracer(tracer, "bashreadline.bt")
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
    t = Tracer(tracer, "tcpconnect.bt")
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
    t = Tracer("pybpftrace", "biolatency.bt")
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
    t = Tracer("pybpftrace", "pidpersec.bt")
    t.started()
    t.wait_for("^Tracing new processes")
    for _ in range(3):
        subprocess.run(["/bin/true"], check=True)
    line = t.wait_for(r"^\d\d:\d\d:\d\d PIDs/sec: @: \d+$", timeout=5)
    t.stop()
    assert int(line.split()[-1]) >= 0


def test_runqlat():
    t = Tracer("pybpftrace", "runqlat.bt")
    t.started()
    for _ in range(20):
        time.sleep(0.005)  # each wake-up goes through the run queue
    out = t.stop()
    assert "\n@usecs:\n" in out  # 0.26's histogram header: no space after the colon (0.17: "@usecs: ")
    assert re.search(r"^\[\d+\S*(, \d+\S*\))?\]? +\d+ \|@+ *\|$", out, re.MULTILINE)


def test_syscall_latency():
    t = Tracer("pybpftrace", "syscall_latency.bt")
    t.started()
    with open("/proc/self/stat", "rb") as fh:
        fh.read()
    out = t.stop()
    # 0.26's texts (0.17: "@stats[python]: count N, average N, total N" and "@usecs[python]: ")
    assert re.search(r"^@stats\[python[\d.]*\]: \{ \.count = \d+, \.average = \d+, \.total = \d+ \}$", out,
                     re.MULTILINE), out[-2000:]
    assert re.search(r"^@usecs\[python[\d.]*\]:$", out, re.MULTILINE)


def test_syscount():
    t = Tracer("pybpftrace", "syscount.bt")
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
    t = Tracer("pybpftrace", "vfsstat.bt")
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
    res = subprocess.run([*COMMANDS["pybpftrace"], tool(name)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert "kprobes are not available on this kernel (CONFIG_KPROBES is off)" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.kprobes
def test_vfsstat_kprobe():
    t = Tracer("pybpftrace", "vfsstat_kprobe.bt")
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
    t = Tracer("pybpftrace", "tcpconnect_kprobe.bt")
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


# -- tools/ in today's language, the 0.17 copies in step with them -------------------------------------------

COMPARED_WITH_BPFTRACE = {"opensnoop", "execsnoop", "killsnoop", "bashreadline", "tcpconnect"}


def _code(path: str) -> str:
    """The script without its comments."""
    with open(path) as fh:
        text = fh.read()
    return re.sub(r"/\*.*?\*/|//[^\n]*|^#![^\n]*", "", text, flags=re.S | re.M)


def _strings(code: str) -> list:
    return re.findall(r'"(?:[^"\\]|\\.)*"', code)


def _attach_points(code: str) -> list:
    """The probes' attach points as written (a line at column 0 that opens no block, predicate or config)."""
    return [line.rstrip(",").lower() for line in code.splitlines()
            if re.match(r"[A-Za-z]", line) and not line.startswith("config")]


def test_tools_are_written_in_todays_language():
    old = {r"^(BEGIN|END)\b": "BEGIN/END (today: begin/end)",
           r"->": "-> (today: args.f, and . through pointers)",
           r"\bdelete\(@\w*\[": "delete(@m[k]) (today: delete(@m, k))",
           r"\binterval:(s|ms|us):": "interval:s:N (today: interval:Ns)"}
    for name in sorted(n for n in os.listdir(TOOLS) if n.endswith(".bt")):
        code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', _code(os.path.join(TOOLS, name)))
        for pattern, what in old.items():
            assert not re.search(pattern, code, re.MULTILINE), f"tools/{name} uses 0.17's {what}"


def test_the_017_copies_are_the_tools_in_017s_language():
    """tests/kernel/tools_017 holds a copy of exactly the tools run with bpftrace 0.17 above, printing
    the same strings from the same attach points as the tool (so the comparison still covers it)."""
    copies = {os.path.splitext(n)[0] for n in os.listdir(TOOLS_017) if n.endswith(".bt")}
    assert copies == COMPARED_WITH_BPFTRACE
    for name in sorted(copies):
        ours, theirs = _code(tool(f"{name}.bt")), _code(tool(f"{name}.bt", "bpftrace"))
        assert _strings(ours) == _strings(theirs), name
        assert _attach_points(ours) == _attach_points(theirs), name
