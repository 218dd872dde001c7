"""ebpfpy and pybpftrace as an unprivileged user: every failure is one `ERROR:` line naming the cause.

Each test runs the commands as user nobody through ``setpriv`` (util-linux), with no
capabilities or with ambient ones (``--inh-caps +bpf,+perfmon --ambient-caps +bpf,+perfmon``).
nobody must be able to import ebpfpy and its dependencies: when this interpreter's install is not
readable by nobody (a pyenv under /root, a checkout in a private home), ``nobody_env`` copies the
package and its dependencies into a world-readable temporary directory and runs a system Python
of the same version on it (``_cffi_backend`` is the only compiled module, built for that version).

Exit statuses, as docs/privileges.md documents them: ``ebpfpy`` exits 1 with one
``ERROR: ...`` line on stderr for every failure at run time (bad input, missing permissions,
missing kernel features) and 2 with click's usage message (whose last line is ``Error: ...``)
for a bad command line; pybpftrace exits 1 in both cases, as bpftrace does.

``python3 tests/kernel/test_privileges.py --table`` prints what each operation needs on this
machine (docs/privileges.md's measurements), from tests/privileges_probe.py.
"""
from __future__ import annotations

import grp
import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

pytestmark = pytest.mark.kernel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROBE = os.path.join(ROOT, "tests", "privileges_probe.py")
TRACEFS = "/sys/kernel/tracing"
# What ebpfpy imports at run time, and pycparser (cffi's parser: not needed by ebpfpy's
# pre-parsed declarations, copied anyway in case a dependency wants it).
DEPENDENCIES = ("cffi", "_cffi_backend", "click", "elftools", "pycparser")
CLI = "import sys; from ebpfpy.cli import main; sys.exit(main(prog_name='ebpfpy'))"
HELLO = 'BEGIN { printf("hello\\n"); exit(); }'
TRACEPOINT = "tracepoint:syscalls:sys_enter_execve /pid == cpid/ { @execs = count(); }"
CAP_SETS = {  # name -> setpriv capability list ("" for none)
    "none": "",
    "bpf": "+bpf",
    "bpf+perfmon": "+bpf,+perfmon",
    "bpf+perfmon+dac_read_search": "+bpf,+perfmon,+dac_read_search",
    "sys_admin": "+sys_admin",
    "sys_admin+dac_read_search": "+sys_admin,+dac_read_search",
}


def _nogroup() -> str:
    for name in ("nogroup", "nobody"):
        try:
            grp.getgrnam(name)
            return name
        except KeyError:
            continue
    raise LookupError("no nogroup/nobody group")


class NobodyEnv:
    """How to run a Python command as nobody with ebpfpy importable."""

    def __init__(self, python: str, env: dict[str, str], cwd: str):
        self.python, self.env, self.cwd = python, env, cwd

    def run(self, args: list[str], caps: str = "", timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
        setpriv = ["setpriv", "--reuid=nobody", f"--regid={_nogroup()}", "--clear-groups"]
        if caps:
            setpriv += ["--inh-caps", caps, "--ambient-caps", caps]
        return subprocess.run([*setpriv, "--", *args], env=self.env, cwd=self.cwd, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, **kwargs)

    def ebpfpy(self, *args: str, caps: str = "") -> subprocess.CompletedProcess:
        return self.run([self.python, "-c", CLI, *args], caps=caps)

    def pybpftrace(self, *args: str, caps: str = "") -> subprocess.CompletedProcess:
        return self.run([self.python, "-m", "ebpfpy.bpftrace", *args], caps=caps)


def _origin(module: str) -> str | None:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    return os.path.dirname(spec.origin) if spec.submodule_search_locations else spec.origin


def _readable_copy(top: str) -> str:
    """ebpfpy and its dependencies under ``top``/site, world-readable and byte-compiled."""
    site = os.path.join(top, "site")
    os.makedirs(site)
    for module in ("ebpfpy", *DEPENDENCIES):
        src = _origin(module)
        if src is None:
            continue
        dst = os.path.join(site, os.path.basename(src))
        if os.path.isdir(src):
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    shutil.copy2(PROBE, os.path.join(top, "privileges_probe.py"))
    return site


def _chmod_readable(top: str) -> None:
    for base, dirs, files in os.walk(top):
        for name in dirs:
            os.chmod(os.path.join(base, name), 0o755)
        for name in files:
            path = os.path.join(base, name)
            os.chmod(path, os.stat(path).st_mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    os.chmod(top, 0o755)


def _candidates() -> list[str]:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return list(dict.fromkeys(p for p in (f"/usr/bin/python{version}", "/usr/local/bin/python" + version,
                                          sys.executable) if os.path.exists(p)))


def make_nobody_env(top: str) -> NobodyEnv | str:
    """A NobodyEnv, or the reason there can be none (a string)."""
    if os.geteuid() != 0:
        return "needs root (to switch to nobody)"
    if shutil.which("setpriv") is None:
        return "setpriv is not installed (apt package util-linux)"
    check = ("import sys, ebpfpy.sys.bpf, ebpfpy.cli, click, elftools; "
             f"sys.exit(0 if sys.version_info[:2] == {tuple(sys.version_info[:2])} else 3)")
    base_env = {"PATH": "/usr/bin:/bin", "HOME": top, "LANG": "C.UTF-8"}
    # As installed: this interpreter with its own site-packages, if nobody can read them.
    direct = NobodyEnv(sys.executable, dict(base_env), top)
    if direct.run([sys.executable, "-c", check]).returncode == 0:
        shutil.copy2(PROBE, os.path.join(top, "privileges_probe.py"))
        _chmod_readable(top)
        return direct
    # Otherwise a readable copy, with the first Python of this version nobody can run.
    site = _readable_copy(top)
    for python in _candidates():
        subprocess.run([python, "-m", "compileall", "-q", site], capture_output=True, check=False)
        _chmod_readable(top)
        env = NobodyEnv(python, dict(base_env, PYTHONPATH=site), top)
        if env.run([python, "-c", check]).returncode == 0:
            return env
    return f"no Python {sys.version_info.major}.{sys.version_info.minor} that nobody can run ebpfpy with " \
           f"(tried {', '.join(_candidates())})"


@pytest.fixture(scope="module")
def nobody():
    top = tempfile.mkdtemp(prefix="ebpfpy-nobody-")
    try:
        env = make_nobody_env(top)
        if isinstance(env, str):
            pytest.skip(env)
        yield env
    finally:
        shutil.rmtree(top, ignore_errors=True)


# --------------------------------------------------------------------------
# what the messages look like


def assert_one_error_line(proc: subprocess.CompletedProcess, *words: str) -> str:
    """Exit status 1, no traceback, and stderr is exactly one `ERROR: ...` line (containing ``words``)."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("ERROR: "), proc.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def assert_usage_error(proc: subprocess.CompletedProcess) -> None:
    """click's usage error: exit status 2, the usage, and a last line `Error: ...`; no traceback."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert lines and lines[0].startswith("Usage: ") and lines[-1].startswith("Error: "), proc.stderr


def assert_clean(proc: subprocess.CompletedProcess) -> None:
    """Whatever the outcome: no traceback, and a failure is a one-line ERROR or a usage error."""
    if proc.returncode == 0:
        assert "Traceback" not in proc.stderr, proc.stderr
    elif proc.returncode == 2:
        assert_usage_error(proc)
    else:
        assert_one_error_line(proc)


def tracefs_closed() -> bool:
    """tracefs is mounted and others may not search it (mode 0700 on current kernels)."""
    try:
        return not os.stat(TRACEFS).st_mode & stat.S_IXOTH and os.path.isdir(os.path.join(TRACEFS, "events"))
    except OSError:
        return False


def unprivileged_bpf_disabled() -> str:
    try:
        with open("/proc/sys/kernel/unprivileged_bpf_disabled") as f:
            return f.read().strip()
    except OSError:
        return "0"


# --------------------------------------------------------------------------
# ebpfpy: every subcommand


def leaf_commands() -> list[tuple[list[str], object]]:
    """(path, click command) for every runnable subcommand of the `ebpfpy` group."""
    import click

    from ebpfpy.cli import main

    out = []

    def walk(group, path):
        ctx = click.Context(group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            if isinstance(command, click.Group):
                walk(command, [*path, name])
            else:
                out.append(([*path, name], command))

    walk(main, [])
    return out


def bad_arguments(command, garbage: str) -> list[list[str]]:
    """Argument lists for one command: every positional argument given a garbage file (or an
    id nobody may open), then a path that does not exist."""
    import click

    rows = [[], []]
    for param in command.params:
        if not isinstance(param, click.Argument):
            continue
        if isinstance(param.type, click.types.IntParamType):
            rows[0].append("1")
            rows[1].append("999999999")
        elif param.name in ("directory",):
            rows[0].append("/sys/fs/bpf/ebpfpy-nobody-test")
            rows[1].append("/nonexistent/dir")
        else:
            rows[0].append(garbage)
            rows[1].append("/nonexistent/input.o")
    return rows


def test_every_ebpfpy_subcommand_as_nobody(nobody, tmp_path):
    garbage = os.path.join(nobody.cwd, "garbage.o")
    with open(garbage, "wb") as f:
        f.write(b"this is neither an ELF object nor BTF nor assembly \xff\xfe\n")
    os.chmod(garbage, 0o644)
    commands = leaf_commands()
    assert {"prog list", "map list", "btf dump", "disasm", "asm", "run"} <= {" ".join(p) for p, _ in commands}
    for path, command in commands:
        proc = nobody.ebpfpy(*path, "--help")
        assert proc.returncode == 0 and "Usage:" in proc.stdout and not proc.stderr, (path, proc.stderr)
        # A command that takes unknown options as its own arguments speaks a machine protocol
        # (`vm plugin`, for bpf_conformance): its errors need no `ERROR:` form, only no traceback.
        protocol = command.context_settings.get("ignore_unknown_options", False)
        if not protocol:
            assert_usage_error(nobody.ebpfpy(*path, "--no-such-option"))
        for args in bad_arguments(command, garbage):
            proc = nobody.ebpfpy(*path, *args)
            if protocol:
                assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, (path, args, proc.stderr)
                continue
            assert_clean(proc)
            if args:
                assert proc.returncode != 0, (path, args, proc.stdout[:300])
    assert_usage_error(nobody.ebpfpy("no-such-command"))
    assert_usage_error(nobody.ebpfpy("prog", "show", "not-a-number"))


def test_listing_objects_names_cap_sys_admin(nobody):
    """BPF_*_GET_NEXT_ID needs CAP_SYS_ADMIN: CAP_BPF and CAP_PERFMON are not enough."""
    for caps in ("", CAP_SETS["bpf+perfmon"]):
        for what in ("prog", "map"):
            line = assert_one_error_line(nobody.ebpfpy(what, "list", caps=caps), "Operation not permitted",
                                         "CAP_SYS_ADMIN")
            assert f"BPF_{what.upper()}_GET_NEXT_ID" in line
        assert_one_error_line(nobody.ebpfpy("prog", "show", "1", caps=caps), "can't get prog by id",
                              "CAP_SYS_ADMIN")
    proc = nobody.ebpfpy("prog", "list", caps=CAP_SETS["sys_admin"])
    assert proc.returncode == 0 and not proc.stderr, proc.stderr


# --------------------------------------------------------------------------
# pybpftrace


def test_pybpftrace_without_capabilities(nobody):
    proc = nobody.pybpftrace("-e", HELLO)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("ERROR: ") and "CAP_BPF" in proc.stderr, proc.stderr
    for bad in (["--no-such-flag"], ["-e"], ["-f", "xml", "-e", HELLO], ["/nonexistent.bt"],
                ["-e", "BEGIN { @x = 1 +; }"], ["-c", "/nonexistent", "-e", HELLO]):
        proc = nobody.pybpftrace(*bad)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, (bad, proc.stderr)
        assert "ERROR" in proc.stderr or "USAGE" in proc.stderr, (bad, proc.stderr)


@pytest.mark.skipif(not tracefs_closed(), reason="tracefs is not mounted with a root-only directory here")
def test_tracepoint_names_permission_not_mount(nobody):
    """tracefs is mounted but mode 0700: the message says so, and which capability reads it."""
    for caps in ("", CAP_SETS["bpf+perfmon"]):
        proc = nobody.pybpftrace("-e", "tracepoint:syscalls:sys_enter_getpid { exit(); }", caps=caps)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert "not mounted" not in proc.stderr, proc.stderr
        assert "cannot read tracefs at /sys/kernel/tracing: permission denied" in proc.stderr, proc.stderr
        assert "mode 0700" in proc.stderr and "CAP_DAC_READ_SEARCH" in proc.stderr, proc.stderr
        proc = nobody.pybpftrace("-l", "tracepoint:syscalls:sys_enter_getpid", caps=caps)
        assert_one_error_line(proc, "CAP_DAC_READ_SEARCH")


def test_pybpftrace_with_ambient_capabilities(nobody):
    """CAP_BPF + CAP_PERFMON run BEGIN; tracepoints also need CAP_DAC_READ_SEARCH (tracefs)."""
    proc = nobody.pybpftrace("-e", HELLO, caps=CAP_SETS["bpf+perfmon"])
    assert proc.returncode == 0 and "hello" in proc.stdout, proc.stderr
    proc = nobody.pybpftrace("-c", "/bin/true", "-e", TRACEPOINT, caps=CAP_SETS["bpf+perfmon+dac_read_search"])
    assert proc.returncode == 0 and "@execs: 1" in proc.stdout, (proc.stdout, proc.stderr)


def test_uprobes_name_their_capability(nobody):
    """On this kernel the uprobe PMU wants CAP_SYS_ADMIN: CAP_PERFMON alone gets EACCES."""
    from ebpfpy.sys import perf

    if not perf.pmu_available("uprobe"):
        pytest.skip("no uprobe PMU")
    with open("/proc/self/maps") as maps:
        libc = next(line.split()[-1] for line in maps if os.path.basename(line.split()[-1]).startswith("libc."))
    probe = f"uprobe:{os.path.realpath(libc)}:labs {{ exit(); }}"
    proc = nobody.pybpftrace("-e", probe, caps=CAP_SETS["bpf+perfmon+dac_read_search"])
    assert "Traceback" not in proc.stderr, proc.stderr
    if proc.returncode != 0:
        assert proc.stderr.startswith("ERROR: ") and "CAP_SYS_ADMIN" in proc.stderr, proc.stderr


# --------------------------------------------------------------------------
# the library's own diagnoses, per operation


def tracepoint_getpid_id() -> int:
    with open(os.path.join(TRACEFS, "events", "syscalls", "sys_enter_getpid", "id")) as f:
        return int(f.read())


def probe(env: NobodyEnv, caps: str) -> dict[str, str]:
    proc = env.run([env.python, os.path.join(env.cwd, "privileges_probe.py"), str(tracepoint_getpid_id())],
                   caps=caps)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)


def test_bpf_refusals_name_cause_and_fix(nobody):
    none = probe(nobody, "")
    if unprivileged_bpf_disabled() != "0":
        assert none["map_create(array)"].startswith("EPERM"), none
        assert "kernel.unprivileged_bpf_disabled=" in none["map_create(array)"], none
        assert "CAP_BPF" in none["prog_load(tracepoint)"] and "CAP_PERFMON" in none["prog_load(tracepoint)"]
    bpf_only = probe(nobody, CAP_SETS["bpf"])
    assert bpf_only["map_create(array)"] == "ok" and bpf_only["btf_load"] == "ok", bpf_only
    assert bpf_only["prog_load(tracepoint)"].startswith("EPERM"), bpf_only
    assert "loading tracepoint programs needs CAP_BPF and CAP_PERFMON" in bpf_only["prog_load(tracepoint)"]
    both = probe(nobody, CAP_SETS["bpf+perfmon"])
    for op in ("prog_load(tracepoint)", "prog_load(kprobe)", "prog_load(raw_tracepoint)",
               "prog_test_run(raw_tracepoint)", "perf_event_open(cpu-clock, all CPUs)"):
        assert both[op] == "ok", (op, both)
    assert "CAP_SYS_ADMIN" in both["prog_get_next_id"], both
    if tracefs_closed():
        text = both["read tracefs (tracepoint id)"]
        assert "permission denied" in text and "CAP_DAC_READ_SEARCH" in text and "not mounted" not in text, text
    perf_only = probe(nobody, "+perfmon")
    assert perf_only["perf_event_open(tracepoint, all CPUs)"] == "ok", perf_only
    if "perf_event_open(uprobe PMU)" in both and both["perf_event_open(uprobe PMU)"] != "ok":
        assert "CAP_SYS_ADMIN" in both["perf_event_open(uprobe PMU)"], both
    everything = probe(nobody, CAP_SETS["bpf+perfmon+dac_read_search"])
    assert everything["read tracefs (tracepoint id)"] == "ok" and everything["attach tracepoint program"] == "ok"


# --------------------------------------------------------------------------
# docs/privileges.md's table


def table() -> str:
    """The markdown table of what each operation needs here: root, then nobody with each cap set."""
    top = tempfile.mkdtemp(prefix="ebpfpy-nobody-")
    try:
        env = make_nobody_env(top)
        if isinstance(env, str):
            raise SystemExit(env)
        columns = {"root": None, **{f"nobody {k}" if k != "none" else "nobody": v for k, v in CAP_SETS.items()}}
        results = {}
        for name, caps in columns.items():
            if caps is None:
                out = subprocess.run([sys.executable, PROBE, str(tracepoint_getpid_id())], capture_output=True,
                                     text=True, check=True).stdout
                results[name] = json.loads(out)
            else:
                results[name] = probe(env, caps)
        ops = list(results["root"])
        lines = ["| operation | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        for op in ops:
            cells = []
            for name in columns:
                value = results[name].get(op, "-")
                cells.append("ok" if value == "ok" else value.split(":")[0])
            lines.append(f"| {op} | " + " | ".join(cells) + " |")
        return "\n".join(lines)
    finally:
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--table"]:
        print(table())
    else:
        print(__doc__)
