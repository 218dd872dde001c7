"""Shared machinery of the ebpfpy-vs-bpftrace benchmarks.

Every metric module asks this one for three things: how to start each tool
(``TOOLS``), how to run and time a process while reading its rusage
(``Proc``), and how to turn samples into a verdict (``Metric``). Pure parts
(statistics, the ratio/target logic, the writers) take plain values so
``tests/unit/test_bench_harness.py`` can check them without a kernel.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# ``python -m`` and ``-c`` put the current directory first on sys.path: run from the
# repository's root, they import the source tree (not the wheel under test)
# instead of the install being measured. -P (Python 3.11+) leaves it off; -I, before 3.11,
# also ignores PYTHON* variables and the user's site-packages.
SAFE_PATH = ["-P"] if sys.version_info >= (3, 11) else ["-I"]

# The two command lines compared. Until run.py picks the install to time (use_venv or
# use_checkout), ebpfpy runs from this interpreter's install with ``-m``, so a pyenv shim's
# own start-up is not charged to it.
TOOLS: dict[str, list[str]] = {
    "ebpfpy": [sys.executable, *SAFE_PATH, "-m", "ebpfpy.bpftrace"],
    "bpftrace": ["bpftrace"],
}
TOOL_NAMES = ("ebpfpy", "bpftrace")

# The Python that runs the in-process measurements (bench/inproc.py runs them as a script,
# whose own directory, bench/, is first on sys.path: never the tree's root): the one whose
# install the tool runs from, so both measure the same ebpfpy.
PYTHON: list = [sys.executable]

# bench/spawn.c, built by run.py: when set, every tool runs under it so that its peak RSS is
# its own (a process started straight from this ~25 MB Python process inherits that as its
# ru_maxrss floor, because Linux keeps maxrss across execve).
SPAWN: str | None = None

# Both tools run with bpftrace's defaults (BPFTRACE_MAP_KEYS_MAX 4096, ...), as their users
# run them; a metric that needs more (map printing: 100,000 keys) passes its own ``env``.
DEFAULT_MAP_KEYS_MAX = 4096


# -- statistics ------------------------------------------------------------------

def median(values: Sequence[float]) -> float | None:
    """The middle value (mean of the two middle ones for an even count); None when empty."""
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    mid = len(vals) // 2
    return float(vals[mid]) if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2


def spread(values: Sequence[float]) -> tuple | None:
    vals = [v for v in values if v is not None]
    return (min(vals), max(vals)) if vals else None


# -- targets -----------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """A bound on ebpfpy / bpftrace: ``le`` means the ratio must be at most ``bound``, ``ge`` at least.

    ``kind == "report"`` has no bound: the metric is informative only.
    """
    kind: str  # "le", "ge", "not_more" (ebpfpy <= bpftrace, absolute) or "report"
    bound: float = 0.0

    def text(self) -> str:
        return {"le": f"<= {self.bound:g}", "ge": f">= {self.bound:g}",
                "not_more": "<= bpftrace's"}.get(self.kind, "reported")

    def met(self, ratio: float | None) -> bool | None:
        if self.kind == "report" or ratio is None:
            return None
        return ratio <= self.bound if self.kind == "le" else ratio >= self.bound


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, None when either is missing or b is zero (a 0/0 counts as 1: equal)."""
    if a is None or b is None:
        return None
    if b == 0:
        return 1.0 if a == 0 else None
    return a / b


@dataclass
class Metric:
    """One row of the results table: samples for both tools, and how they compare.

    ``value`` folds samples into the number compared (median by default);
    ``na`` maps a tool to the reason it has no number.
    """
    name: str
    unit: str
    target: Target
    how: str
    samples: dict = field(default_factory=lambda: {t: [] for t in TOOL_NAMES})
    na: dict = field(default_factory=dict)
    value: Callable[[list], float | None] = median
    notes: list = field(default_factory=list)
    raw: dict = field(default_factory=dict)  # anything else worth keeping (per-script tables)
    ratio_fn: Callable[[Metric], float | None] | None = None  # when not result/result
    details: str = ""  # markdown shown under "Details" (per-script tables)

    def result(self, tool: str) -> float | None:
        if tool in self.na:
            return None
        return self.value(self.samples.get(tool, []))

    def ratio(self) -> float | None:
        if self.na:
            return None
        if self.ratio_fn is not None:
            return self.ratio_fn(self)
        return ratio(self.result("ebpfpy"), self.result("bpftrace"))

    def met(self) -> bool | None:
        if self.target.kind == "not_more":
            a, b = self.result("ebpfpy"), self.result("bpftrace")
            return None if a is None or b is None else a <= b
        return self.target.met(self.ratio())

    def cell(self, tool: str) -> str:
        if tool in self.na:
            return f"n/a ({self.na[tool]})"
        val = self.result(tool)
        if val is None:
            return "n/a (no samples)"
        text = f"{fmt(val)} {self.unit}".strip()
        rng = spread(self.samples.get(tool, []))
        if rng and len(self.samples[tool]) > 1 and self.value is median:
            text += f" [{fmt(rng[0])}–{fmt(rng[1])}]"
        return text

    def to_json(self) -> dict:
        return {
            "unit": self.unit,
            "ebpfpy": self.result("ebpfpy"),
            "bpftrace": self.result("bpftrace"),
            "ratio": self.ratio(),
            "target": self.target.text(),
            "met": self.met(),
            "na": dict(self.na),
            "samples": {t: list(self.samples.get(t, [])) for t in TOOL_NAMES},
            "how": self.how,
            "notes": list(self.notes),
            **({"raw": self.raw} if self.raw else {}),
        }


def fmt(value: float | None) -> str:
    """Three significant digits, no exponent for the ranges we print."""
    if value is None:
        return "n/a"
    if value == 0:
        return "0"
    mag = abs(value)
    if mag >= 1000:
        return f"{value:,.0f}"
    if mag >= 100:
        return f"{value:.0f}"
    if mag >= 10:
        return f"{value:.1f}"
    if mag >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def verdict(met: bool | None) -> str:
    return {True: "yes", False: "**NO**", None: "—"}[met]


# -- writers -------------------------------------------------------------------------

def render_markdown(metrics: Sequence[Metric], env: dict, library: Sequence[tuple] = ()) -> str:
    """The results page: environment, the comparison table, the library rows, how each was measured."""
    lines = ["# ebpfpy vs bpftrace benchmarks", ""]
    for key in ("date", "kernel", "cpu", "cpus", "python", "bpftrace", "runs", "command", "duration", "pybpftrace",
                "ebpfpy imported from"):
        if key in env:
            lines.append(f"- {key}: {env[key]}")
    lines += load_lines(env.get("load"))
    lines += ["", "| metric | ebpfpy | bpftrace | ratio | target | met? |", "|---|---|---|---|---|---|"]
    for m in metrics:
        r = m.ratio()
        lines.append(f"| {m.name} | {m.cell('ebpfpy')} | {m.cell('bpftrace')} | "
                     f"{fmt(r) if r is not None else 'n/a'} | {m.target.text()} | {verdict(m.met())} |")
    missed = [m.name for m in metrics if m.met() is False]
    lines.append("")
    lines.append("Targets missed: " + (", ".join(missed) if missed else "none") + ".")
    if library:
        lines += ["", "## ebpfpy library paths (no target)", "", "| path | median | range |", "|---|---|---|"]
        for name, samples, unit, note in library:
            if isinstance(samples, str):
                lines.append(f"| {name} | n/a ({samples}) | |")
                continue
            rng = spread(samples)
            lines.append(f"| {name} | {fmt(median(samples))} {unit} | "
                         f"{fmt(rng[0])}–{fmt(rng[1])} {unit} |" + (f" {note}" if note else ""))
    lines += ["", "## How measured", ""]
    for m in metrics:
        lines.append(f"- **{m.name}**: {m.how}")
        for note in m.notes:
            lines.append(f"  - {note}")
    for m in metrics:
        if m.details:
            lines += ["", f"## Details: {m.name}", "", m.details]
    return "\n".join(lines) + "\n"


NOTES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "notes.md")


def hand_notes() -> str:
    """bench/notes.md (before/after comparisons made by hand, e.g. across a refactor), appended to
    results.md so a new run does not drop them."""
    try:
        with open(NOTES) as f:
            return "\n" + f.read()
    except FileNotFoundError:
        return ""


def write_results(metrics: Sequence[Metric], env: dict, library: Sequence[tuple], md_path: str,
                  json_path: str) -> None:
    with open(md_path, "w") as f:
        f.write(render_markdown(metrics, env, library))
        f.write(hand_notes())
    data = {
        "env": env,
        "metrics": {m.name: m.to_json() for m in metrics},
        "library": {name: ({"na": s} if isinstance(s, str) else {"median": median(s), "samples": s,
                                                                 "unit": unit, "note": note})
                    for name, s, unit, note in library},
    }
    with open(json_path, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


# -- interleaving -----------------------------------------------------------------------

def interleave(runs: int, fns: dict, order: Sequence[str] = TOOL_NAMES) -> dict:
    """Call fns[tool]() ``runs`` times, alternating A B A B, so drift hits both tools alike.

    A call returns one sample or None; None (or an exception, kept as a reason)
    is not added. Returns {tool: samples} and {tool: reason} of the first failure.
    """
    samples = {t: [] for t in order}
    errors: dict = {}
    for _ in range(runs):
        for tool in order:
            if tool in errors and not samples[tool]:
                continue  # it failed and never worked: do not waste the time again
            try:
                val = fns[tool]()
            except ToolFailed as err:
                errors.setdefault(tool, str(err))
                continue
            if val is not None:
                samples[tool].append(val)
    return samples, errors


class ToolFailed(Exception):
    """A tool did not produce a measurement; the message is the short reason shown as n/a."""


# -- processes ---------------------------------------------------------------------------

def tool_argv(tool: str, *args: str) -> list:
    return [*TOOLS[tool], *args]


# Variables kept from the tools (use_venv: a PYTHONPATH naming the tree would shadow the wheel).
ENV_DROP: set = set()


def tool_env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ENV_DROP}
    # the reference is bpftrace 0.17: pybpftrace runs in 0.17 mode, so both print the same text
    env.setdefault("PYBPFTRACE_COMPAT", "0.17")
    env.update(extra or {})
    return env


class Proc:
    """A child process with a start time, its rusage at exit, and line reading with deadlines.

    stdout is a pipe read line by line (``wait_for``); stderr goes to a temp
    file so a chatty child never blocks and the first error line can become
    the n/a reason.
    """

    def __init__(self, argv: list, *, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=None):
        self.err = tempfile.TemporaryFile()
        self._report = None
        self._rss_kb: int | None = None
        self._tool_pid: int | None = None
        if SPAWN:  # run the tool under bench/spawn.c, which reports the tool's own peak RSS
            fd, self._report = tempfile.mkstemp(prefix="ebpfpy-bench-rss-")
            os.close(fd)
            argv = [SPAWN, self._report, *argv]
        self.t0 = time.perf_counter()
        self.popen = subprocess.Popen(argv, stdout=stdout, stdin=stdin, stderr=self.err,
                                      env=env if env is not None else tool_env())
        self.pid = self.popen.pid  # signals go here (spawn passes them on)
        self.rusage = None
        self.status: int | None = None
        self.t_exit: float | None = None
        self.lines: list = []
        self._buf = b""
        self._eof = False
        self._fd = self.popen.stdout.fileno() if self.popen.stdout is not None else -1

    def readline(self, timeout: float) -> str | None:
        """The next stdout line, or None at EOF / when nothing arrives in time.

        Reads the pipe with os.read into our own buffer: a buffered file
        object could hold several lines while select() reports nothing new.
        """
        import select

        deadline = time.perf_counter() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.perf_counter()
            if self._eof or left <= 0:
                return None
            r, _, _ = select.select([self._fd], [], [], left)
            if not r:
                return None
            chunk = os.read(self._fd, 65536)
            if not chunk:
                self._eof = True
                if self._buf:
                    self._buf += b"\n"
                continue
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        text = line.decode(errors="replace") + "\n"
        self.lines.append(text)
        return text

    def wait_for(self, predicate: Callable[[str], bool], timeout: float) -> float | None:
        """Read lines until one satisfies predicate; return the time since start, or None."""
        deadline = time.perf_counter() + timeout
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                return None
            line = self.readline(left)
            if line is None:
                if not self.alive():
                    return None
                if self._eof:
                    time.sleep(0.01)  # stdout closed but still running: wait for the time out
                continue
            if predicate(line):
                return time.perf_counter() - self.t0

    def alive(self) -> bool:
        """True while the child has not exited; unlike Popen.poll it does not reap it (wait4 must)."""
        if self.status is not None:
            return False
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return False
        return info is None

    def drain(self, timeout: float = 60.0) -> None:
        """Read stdout until EOF (the child's exit), keeping every line."""
        deadline = time.perf_counter() + timeout
        while self._fd >= 0 and not self._eof and time.perf_counter() < deadline:
            self.readline(0.2)

    def wait(self, timeout: float = 60.0) -> int:
        """Reap the child with wait4 (so ru_maxrss is its own), SIGKILL after timeout."""
        if self.status is not None:
            return self.status
        deadline = time.perf_counter() + timeout
        while True:
            pid, status, rusage = os.wait4(self.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                pid, status, rusage = os.wait4(self.pid, 0)
                break
            time.sleep(0.002)
        self.t_exit = time.perf_counter()
        self.rusage = rusage
        fields = self._report_fields()  # spawn wrote the tool's peak RSS before it exited
        self._rss_kb = int(fields[1]) if len(fields) >= 2 else None
        self.status = os.waitstatus_to_exitcode(status)
        self.popen.returncode = self.status  # keep Popen from reaping again
        return self.status

    def stop(self, timeout: float = 60.0) -> int:
        """SIGINT, as a user's Ctrl-C, then wait."""
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
        return self.wait(timeout)

    def kill(self) -> None:
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait(5)

    @property
    def wall(self) -> float:
        return (self.t_exit or time.perf_counter()) - self.t0

    def _report_fields(self) -> list:
        if self._report is None:
            return []
        with open(self._report) as f:
            return f.read().split()

    @property
    def tool_pid(self) -> int:
        """The tool's own pid (for /proc and bpftool lookups): spawn's child when spawn runs it.
        Read from spawn's report once (polling loops ask for it on every round)."""
        if self._tool_pid is not None:
            return self._tool_pid
        if self._report is None:
            return self.pid
        deadline = time.perf_counter() + 5
        while True:
            fields = self._report_fields()
            if fields:
                self._tool_pid = int(fields[0])
                return self._tool_pid
            if time.perf_counter() > deadline:
                return self.pid
            time.sleep(0.001)

    @property
    def maxrss_mb(self) -> float | None:
        if self._rss_kb is not None:
            return self._rss_kb / 1024
        return self.rusage.ru_maxrss / 1024 if self.rusage else None

    def error_text(self) -> str:
        """What went wrong, from stderr (see error_line); the exit status when stderr says nothing."""
        self.err.seek(0)
        return error_line(self.err.read().decode(errors="replace")) or f"exit status {self.status}"

    def close(self) -> None:
        self.kill()
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        self.err.close()
        if self._report is not None:
            os.unlink(self._report)
            self._report = None

    def __enter__(self) -> Proc:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def error_line(text: str) -> str:
    """The line of a tool's stderr that says what went wrong ('' when there is none).

    A Python traceback's exception (its last unindented line, not "Traceback (most recent
    call last):"); otherwise the first meaningful line, bpftrace's RLIMIT_MEMLOCK warning skipped.
    """
    lines = [line for line in text.splitlines() if line.strip() and "RLIMIT_MEMLOCK" not in line]
    if any(line.startswith("Traceback (most recent call last)") for line in lines):
        for line in reversed(lines):
            if not line[0].isspace():
                return line.strip()[:160]
    return lines[0].strip()[:160] if lines else ""


def attaching(line: str) -> bool:
    return line.startswith("Attaching ")


# -- which ebpfpy ---------------------------------------------------------------------------

def use_venv(venv: str) -> None:
    """Time the install in ``venv`` as its user runs it: its console script, whose sys.path
    starts with venv/bin (never the current directory), and its python for in-process work."""
    TOOLS["ebpfpy"] = [os.path.join(venv, "bin", "pybpftrace")]
    PYTHON[:] = [os.path.join(venv, "bin", "python")]
    ENV_DROP.add("PYTHONPATH")


def use_checkout() -> None:
    """Time this interpreter's install (editable in a checkout), the current directory kept off sys.path."""
    TOOLS["ebpfpy"] = [sys.executable, *SAFE_PATH, "-m", "ebpfpy.bpftrace"]
    PYTHON[:] = [sys.executable]
    ENV_DROP.discard("PYTHONPATH")


def in_install(module: str, func: str, *args, timeout: float = 900) -> dict:
    """Run ``func(*args)`` of bench/MODULE.py in a child of ``PYTHON`` (bench/inproc.py).

    In-process measurements import ebpfpy; run here they would import whatever this process
    finds first (the tree, from the repository's root). Returns the child's report:
    ``result`` (JSON values) and ``ebpfpy``, the directory its ebpfpy was imported from (or
    why it could not be). A child that fails raises ToolFailed with its exception line.
    """
    with tempfile.TemporaryDirectory(prefix="ebpfpy-bench-inproc-") as tmp:
        out = os.path.join(tmp, "report.json")
        argv = [*PYTHON, os.path.join(HERE, "inproc.py"), out, module, func, json.dumps(list(args))]
        try:
            run = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, env=tool_env(), timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ToolFailed(f"{module}.{func} ran over {timeout:.0f} s") from None
        if run.returncode != 0 or not os.path.exists(out):
            raise ToolFailed(error_line(run.stderr.decode(errors="replace")) or f"exit status {run.returncode}")
        with open(out) as f:
            return json.load(f)


def ebpfpy_location() -> str:
    """The directory ebpfpy is imported from by ``PYTHON`` (and so by the tool), or why it is not."""
    return in_install("harness", "median", [])["ebpfpy"]


# -- how quiet the machine was ------------------------------------------------------------------

QUIET_LOAD = 0.25    # 1-minute load average per CPU, before the run
QUIET_OTHERS = 0.10  # share of the machine's CPU time that other processes used during the run
QUIET_RULE = (f"quiet = 1-minute load average before the run <= {QUIET_LOAD:g} x CPUs, and processes other "
              f"than the bench used <= {QUIET_OTHERS:.0%} of the machine's CPU time during it (/proc/stat user+"
              "nice+system minus the bench's own rusage); the load average after the run counts the bench's "
              "own processes, so it is recorded, not judged")


def loadavg() -> list:
    """The 1-, 5- and 15-minute load averages (/proc/loadavg)."""
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def busy_cpu_seconds() -> float:
    """CPU seconds the machine has spent running processes (user, nice, system) since boot."""
    with open("/proc/stat") as f:
        fields = f.readline().split()  # cpu user nice system idle iowait irq softirq steal ...
    return sum(int(x) for x in fields[1:4]) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds of this process and of every descendant reaped so far (the tools, under spawn)."""
    import resource

    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def judge_quiet(before: Sequence[float], after: Sequence[float], cpus: int, others_share: float) -> dict:
    """The load record of a run and its verdict under QUIET_RULE."""
    quiet = before[0] <= QUIET_LOAD * cpus and others_share <= QUIET_OTHERS
    return {"before": list(before), "after": list(after), "cpus": cpus,
            "others_cpu_share": round(others_share, 3), "quiet": quiet, "rule": QUIET_RULE}


class LoadWatch:
    """Load averages before and after a run, and the CPU time others used in between."""

    def __init__(self):
        self.cpus = os.cpu_count() or 1
        self.before = loadavg()
        self._t0, self._busy0, self._own0 = time.perf_counter(), busy_cpu_seconds(), own_cpu_seconds()

    def quiet_before(self) -> bool:
        return self.before[0] <= QUIET_LOAD * self.cpus

    def finish(self) -> dict:
        wall = time.perf_counter() - self._t0
        others = (busy_cpu_seconds() - self._busy0) - (own_cpu_seconds() - self._own0)
        share = max(0.0, others) / (wall * self.cpus) if wall > 0 else 0.0
        return judge_quiet(self.before, loadavg(), self.cpus, share)


def load_lines(load: dict | None) -> list:
    """results.md's lines for a LoadWatch record."""
    if not load:
        return []
    avg = lambda xs: " ".join(f"{x:.2f}" for x in xs)  # noqa: E731
    return [f"- load average (1, 5, 15 min): {avg(load['before'])} before the run, {avg(load['after'])} after "
            f"({load['cpus']} CPUs)",
            f"- CPU time used by other processes during the run: {load['others_cpu_share']:.0%} of the machine's",
            f"- quiet run: {'yes' if load['quiet'] else '**NO**'} ({load['rule']})"]


# -- the kernel side ------------------------------------------------------------------------

def prog_ids_of(pid: int) -> set:
    """Ids of the BPF programs a process holds (prog fds and links), from /proc/PID/fdinfo."""
    ids = set()
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return ids
    for fd in fds:
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
            if "bpf-prog" not in target and "bpf_link" not in target:
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                for line in f:
                    if line.startswith("prog_id:"):
                        ids.add(int(line.split()[1]))
        except (OSError, ValueError):
            continue
    return ids


def tracepoints_attached(pid: int) -> int:
    """How many tracepoint/uprobe perf events of this process have a program (``bpftool perf``)."""
    out = subprocess.run(["bpftool", "perf", "list", "-j"], capture_output=True, text=True).stdout
    try:
        rows = json.loads(out or "[]")
    except ValueError:
        return 0
    return sum(1 for r in rows if r.get("pid") == pid)


def wait_attached(proc: Proc, n: int, timeout: float) -> bool:
    """Poll until the process has ``n`` tracepoints attached (or it exits / time runs out)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if not proc.alive():
            return False
        if tracepoints_attached(proc.tool_pid) >= n:
            return True
        time.sleep(0.05)
    return False


def loaded_prog_ids() -> set:
    out = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True).stdout
    try:
        return {p["id"] for p in json.loads(out or "[]")}
    except (ValueError, KeyError):
        return set()


def held_prog_ids() -> set:
    """Ids of every program some live process holds an fd or link to."""
    ids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            ids |= prog_ids_of(int(entry))
    return ids


def ensure_tracefs() -> None:
    if not os.path.exists("/sys/kernel/tracing/events"):
        os.makedirs("/sys/kernel/tracing", exist_ok=True)
        subprocess.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"], check=False)


def build_c(tmpdir: str, name: str) -> str:
    """Compile bench/NAME.c into tmpdir; return the binary's path."""
    out = os.path.join(tmpdir, name)
    subprocess.run(["gcc", "-O2", "-o", out, os.path.join(HERE, name + ".c")], check=True)
    return out


class Loop:
    """bench/loop.c started with -w: its pid is known before it makes a single syscall."""

    def __init__(self, binary: str, mode: str, n: int):
        self.popen = subprocess.Popen([binary, "-w", mode, str(n)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE)
        self.pid = int(self.popen.stdout.readline())

    def go(self) -> float:
        self.popen.stdin.write(b"x")
        self.popen.stdin.flush()
        return time.perf_counter()

    def finish(self, timeout: float = 120) -> int:
        """Wait for the loop; return the nanoseconds it reported."""
        out, _ = self.popen.communicate(timeout=timeout)
        return int(out.strip() or 0)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()
        for s in (self.popen.stdin, self.popen.stdout):
            try:
                s.close()
            except (OSError, BrokenPipeError):
                pass
