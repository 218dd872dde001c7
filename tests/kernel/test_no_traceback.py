"""No traceback on any path (issue #17): every `ebpfpy` subcommand and pybpftrace, given bad
arguments, as root and as user nobody, fail the documented way (docs/privileges.md), never with a
Python traceback and never with an "internal error" (the catch-all that marks a bug).

- `ebpfpy`: exit status 1 with exactly one `ERROR: ...` line on stderr for a failure at run time,
  or click's usage error (`Usage: ...`, a last line `Error: ...`, exit status 2) for a malformed
  command line. A command that speaks a machine protocol (`vm plugin`: it takes unknown options as
  its own arguments) only has to exit 0 or 1 without a traceback.
- pybpftrace: exit status 1 for every failure, usage errors included, as bpftrace; its messages keep
  bpftrace's layout (a script error names the source line and underlines it; 0.17 says `No probes
  to attach` on stdout), so they are checked for a traceback, an internal error, the status and
  that something was said, not for a line count.

The subcommands are found by walking the click group, so a new one is walked from the day it exists:
each positional argument and each option taking a value is given, in turn, bad values chosen by its
click type (a missing path, a directory, a garbage file, an empty string; a number out of range, a
non-number, an id or pid nothing has). The only table written by hand is BASE, the arguments that
make each command get as far as it can (a real BPF object, a real config, a real program id), so a
bad value meets the command's own checks and not only the first missing argument; a command with no
row there fails `test_every_subcommand_has_base_arguments`. pybpftrace's flags come from its getopt
tables (`ebpfpy.bpftrace.cli`) in the same way.

tests/kernel/test_privileges.py checks the wording of the permission errors themselves; this test
checks the form of everything else. It does not run in the qemu guest: nothing in it depends on the
kernel's version, and under TCG its ~500 processes would take CI's whole budget.
"""
from __future__ import annotations

import concurrent.futures
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass

import click
import pytest
from helpers import bpf_object
from test_privileges import CLI, assert_usage_error, make_nobody_env

from ebpfpy.cli import main

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(bool(os.environ.get("EBPFPY_VM")), reason="walked on the host (see the module's docstring)"),
]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# A child that tries to allocate gigabytes (a size taken from a bad argument) fails with
# MemoryError, which the test reports, instead of the kernel's OOM killer picking a process.
MEMORY_LIMIT = 4 << 30
TIMEOUT = 90  # seconds per command: a hang is a failure too
WORKERS = max(2, min(4, os.cpu_count() or 1))
BIG = "99999999999999999999"  # above every integer type the kernel has


@dataclass
class Files:
    """The inputs the walk uses, in a directory user nobody can read."""

    top: str
    ok_s: str  # a valid assembly program
    garbage: str  # bytes that are no object, no BTF, no text
    directory: str  # a directory where a file is wanted
    missing: str  # a path that does not exist (its parent neither)
    obj: str  # a clang-built BPF object (run_events.bpf.o), or `garbage` without clang
    more_objs: list[str]  # objects with network and uprobe programs, for `run`'s target options
    config_dir: str  # ebpf_exporter configs: exporter_getpid.yaml and .bpf.o
    pin_dir: str  # a fresh directory on bpffs for `prog loadall`
    prog_id: str  # a program loaded by this test
    map_id: str  # a map created by this test
    free_pid: str  # a pid no process has (and an id no BPF object has)


def _free_pid() -> str:
    with open("/proc/sys/kernel/pid_max") as f:
        pid = int(f.read()) - 1
    while os.path.exists(f"/proc/{pid}"):
        pid -= 1
    return str(pid)


def _bpf_objects(config_dir: str) -> tuple[str | None, list[str]]:
    """run_events.bpf.o (for `run`, `prog loadall` and `disasm`) with exporter_getpid.bpf.o beside
    it for `exporter`'s config, and the objects whose programs take `run`'s targets: links.bpf.o
    (--ifname, --cgroup), net_links.bpf.o (--netns) and exporter_uprobe.bpf.o built for tests/progs/uprobe_target
    (--pid). Built with clang-19 (and cc); (None, []) without it."""
    try:
        bpf_object("exporter_getpid", config_dir)
        main_obj = bpf_object("run_events", config_dir)
        more = [bpf_object("links", config_dir), bpf_object("net_links", config_dir)]
    except (pytest.skip.Exception, subprocess.CalledProcessError):
        return None, []
    target = os.path.join(config_dir, "uprobe_target")
    uprobe = os.path.join(config_dir, "uprobe.bpf.o")
    src = os.path.join(ROOT, "tests", "bpf_objects")
    built = shutil.which("cc") and subprocess.run(
        ["cc", "-O2", "-o", target, os.path.join(ROOT, "tests", "progs", "uprobe_target.c")],
        capture_output=True).returncode == 0
    if built and subprocess.run(
            ["clang-19", "-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86", f'-DTARGET="{target}"',
             "-I", config_dir, "-I", src, "-c", os.path.join(src, "exporter_uprobe.bpf.c"), "-o", uprobe],
            capture_output=True).returncode == 0:
        more.append(uprobe)
    return main_obj, more


@pytest.fixture(scope="module")
def files():
    from ebpfpy.isa.insn import Insn
    from ebpfpy.maps import Map
    from ebpfpy.progs import Program

    top = tempfile.mkdtemp(prefix="ebpfpy-no-traceback-")
    pin_dir = f"/sys/fs/bpf/ebpfpy-no-traceback-{uuid.uuid4().hex[:8]}"
    m = Map.create("array", key="I", value="Q", max_entries=2, name="no_tb_map")
    p = Program.load("socket_filter", [Insn(0xB7, 0, 0, 0, 0), Insn(0x95)], name="no_tb_prog")
    try:
        ok_s = os.path.join(top, "ok.s")
        with open(ok_s, "w") as f:
            f.write("r0 = 0\nexit\n")
        garbage = os.path.join(top, "garbage.o")
        with open(garbage, "wb") as f:
            f.write(b"\xff\xfe\x00 neither an ELF object nor BTF nor assembly \x80\n")
        directory = os.path.join(top, "a-directory")
        os.mkdir(directory)
        config_dir = os.path.join(top, "configs")
        os.mkdir(config_dir)
        obj, more_objs = _bpf_objects(config_dir)
        shutil.copy(os.path.join(ROOT, "tests", "bpf_objects", "exporter_getpid.yaml"), config_dir)
        yield Files(top=top, ok_s=ok_s, garbage=garbage, directory=directory,
                    missing=os.path.join(top, "missing", "input"), obj=obj or garbage, more_objs=more_objs,
                    config_dir=config_dir,
                    pin_dir=pin_dir, prog_id=str(p.info().id), map_id=str(m.info().id), free_pid=_free_pid())
    finally:
        m.close()
        p.close()
        shutil.rmtree(pin_dir, ignore_errors=True)  # bpffs: unlinking a pin is removing it
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="module")
def nobody(files):
    """Runs commands as user nobody (test_privileges.make_nobody_env), with the inputs readable."""
    for base, dirs, names in os.walk(files.top):
        for name in dirs + names:
            os.chmod(os.path.join(base, name), 0o755)
    os.chmod(files.top, 0o755)
    env = make_nobody_env(tempfile.mkdtemp(prefix="ebpfpy-nobody-", dir=files.top))
    if isinstance(env, str):
        pytest.skip(env)
    return env


# --------------------------------------------------------------------------
# ebpfpy: the command tree and its bad arguments


def command_tree() -> tuple[list[tuple[tuple[str, ...], click.Command]], list[tuple[str, ...]]]:
    """(every runnable subcommand with its path, every group's path), by walking `ebpfpy`'s group."""
    leaves, groups = [], []

    def walk(group: click.Group, path: tuple[str, ...]) -> None:
        groups.append(path)
        ctx = click.Context(group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            if isinstance(command, click.Group):
                walk(command, (*path, name))
            else:
                leaves.append(((*path, name), command))

    walk(main, ())
    return leaves, groups


LEAVES, GROUPS = command_tree()

# What makes each command run (or get as far as it can): positional arguments by parameter name,
# then options. `{name}` is a Files attribute. A bad value of an option is appended after these (the
# last one wins in click), so `-d 0` and `--config.check` keep a tolerated bad value from serving
# forever.
BASE: dict[tuple[str, ...], tuple[dict[str, list[str]], list[str]]] = {
    ("asm",): ({"file": ["{ok_s}"]}, ["-o", "{top}/out.bin"]),
    ("disasm",): ({"file": ["{obj}"]}, []),
    ("btf", "dump"): ({"file": ["/sys/kernel/btf/vmlinux"]}, ["--type", "struct file"]),
    ("exporter",): ({}, ["--config.dir", "{config_dir}", "--config.names", "exporter_getpid", "--config.check"]),
    ("map", "dump"): ({"map_id": ["{map_id}"]}, []),
    ("map", "list"): ({}, []),
    ("map", "show"): ({"map_id": ["{map_id}"]}, []),
    ("prog", "dump"): ({"prog_id": ["{prog_id}"]}, []),
    ("prog", "list"): ({}, []),
    ("prog", "loadall"): ({"obj_path": ["{obj}"], "directory": ["{pin_dir}"]}, []),
    ("prog", "show"): ({"prog_id": ["{prog_id}"]}, []),
    ("run",): ({"obj_path": ["{obj}"]}, ["-d", "0"]),
    ("vm", "plugin"): ({}, ["--program", "b7000000000000009500000000000000"]),
    ("vm", "run"): ({"file": ["{ok_s}"]}, []),
    ("vm", "step"): ({"file": ["{ok_s}"]}, []),
}


# Objects whose programs use `run`'s target options (Files.more_objs): the options' bad values
# are walked again with each of them in place of BASE's object.
MORE_OBJECTS = {("run",): "obj_path"}


def bad_values(param: click.Parameter, files: Files) -> list[str]:
    """Values a user gets wrong, by the parameter's click type."""
    kind = param.type
    if isinstance(kind, click.Choice):
        return ["nosuch"]
    if isinstance(kind, click.types.IntParamType):  # IntRange too
        return ["abc", BIG, files.free_pid]
    if isinstance(kind, click.types.FloatParamType):
        return ["abc", "-1"]
    return [files.missing, files.directory, files.garbage, "", BIG]  # BIG: a name may be a number


def _fill(words: list[str], files: Files) -> list[str]:
    return [word.format(**vars(files)) for word in words]


def invocations(path: tuple[str, ...], command: click.Command, files: Files) -> list[list[str]]:
    """The command line of `path` with its BASE arguments, then with each positional argument and
    each option taking a value given each bad value in turn, then with an option it lacks."""
    positional, options = BASE[path]
    arguments = [p for p in command.params if isinstance(p, click.Argument)]

    def line(override: str | None = None, value: str = "") -> list[str]:
        words = list(path)
        for arg in arguments:
            words += [value] if arg.name == override else _fill(positional.get(arg.name, []), files)
        return words + _fill(options, files)

    rows = [line()]
    for arg in arguments:
        rows += [line(arg.name, value) for value in bad_values(arg, files)]
    bases = [line()] + [line(MORE_OBJECTS[path], obj) for obj in files.more_objs if path in MORE_OBJECTS]
    for option in command.params:
        if isinstance(option, click.Option) and not option.is_flag and not option.hidden:
            rows += [[*base, option.opts[0], value] for base in bases for value in bad_values(option, files)]
    rows.append([*line(), "--no-such-option"])
    return rows


def is_protocol(command: click.Command) -> bool:
    """A command that takes unknown options as its own arguments speaks a machine protocol
    (`vm plugin`, for bpf_conformance): its errors need no `ERROR:` form."""
    return bool(command.context_settings.get("ignore_unknown_options"))


def isolate(rows: list[list[str]], files: Files) -> list[list[str]]:
    """Each command line with a garbage file, a directory and a missing path of its own (under
    TOP/rows/BATCH/N/): the lines run at the same time, and a bad value may be written to (`asm -o
    GARBAGE`, pybpftrace's `-o FILE`) or made (a pin directory)."""
    out = []
    os.makedirs(os.path.join(files.top, "rows"), mode=0o755, exist_ok=True)
    batch = tempfile.mkdtemp(dir=os.path.join(files.top, "rows"))
    os.chmod(batch, 0o755)
    for index, row in enumerate(rows):
        own = os.path.join(batch, str(index))
        os.makedirs(os.path.join(own, "a-directory"))
        garbage = os.path.join(own, os.path.basename(files.garbage))
        shutil.copy(files.garbage, garbage)
        swap = {files.garbage: garbage, files.directory: os.path.join(own, "a-directory"),
                files.missing: os.path.join(own, "missing", "input")}
        words = []
        for word in row:
            for old, new in swap.items():
                word = word.replace(old, new)
            words.append(word)
        out.append(words)
    return out


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_all(commands: list[list[str]], nobody=None, env: dict | None = None, cwd: str | None = None
            ) -> list[subprocess.CompletedProcess]:
    """Run each command line (`python -c CLI ...` or `-m ebpfpy.bpftrace ...`) with this checkout's
    ebpfpy, as root (in `cwd`: a bad value may name an output file there) or as `nobody`, a few at
    a time; a hang shows as status None with the timeout in stderr."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)

    def one(argv: list[str]) -> subprocess.CompletedProcess:
        try:
            # errors="replace": a message may quote the garbage bytes it could not read
            if nobody is not None:
                return nobody.run([nobody.python, *argv], timeout=TIMEOUT, preexec_fn=_limit_memory,
                                  errors="replace")
            return subprocess.run([sys.executable, *argv], capture_output=True, text=True, errors="replace",
                                  timeout=TIMEOUT, stdin=subprocess.DEVNULL, cwd=cwd, env=env,
                                  preexec_fn=_limit_memory)
        except subprocess.TimeoutExpired as exc:
            return subprocess.CompletedProcess(argv, None, exc.stdout or "", f"timed out after {TIMEOUT} s")

    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(one, commands))


def problems_ebpfpy(argv: list[str], proc: subprocess.CompletedProcess, protocol: bool) -> str | None:
    """What is wrong with how `ebpfpy ARGV` ended (None: nothing)."""
    err = proc.stderr
    lines = [line for line in err.splitlines() if line.strip()]
    if "Traceback" in err or "internal error" in err:
        return "a traceback or an internal error"
    if proc.returncode is None or proc.returncode < 0:
        return f"no exit status ({err.strip()[-200:] or 'killed'})"
    if protocol:
        return None if proc.returncode in (0, 1) else f"exit status {proc.returncode}"
    if proc.returncode == 0:
        return None
    if proc.returncode == 2:
        try:
            assert_usage_error(proc)
        except AssertionError:
            return "exit status 2 without click's usage error"
        return None
    if proc.returncode != 1:
        return f"exit status {proc.returncode}"
    if len(lines) != 1 or not lines[0].startswith("ERROR: "):
        return "not exactly one `ERROR:` line"
    return None


def check_ebpfpy(commands: list[tuple[list[str], bool]], files: Files, nobody=None) -> None:
    """Run every (argv, protocol) and fail listing every command line that ended badly."""
    rows = isolate([argv for argv, _ in commands], files)
    results = run_all([["-c", CLI, *argv] for argv in rows], nobody=nobody, cwd=files.directory)
    failures = []
    for (argv, protocol), proc in zip(commands, results):
        problem = problems_ebpfpy(argv, proc, protocol)
        if problem:
            failures.append(f"ebpfpy {' '.join(argv)}: {problem} (status {proc.returncode})\n"
                            f"    stderr: {proc.stderr.strip()[-600:]!r}")
    assert not failures, f"{len(failures)} of {len(commands)} command lines:\n" + "\n".join(failures)


def test_every_subcommand_has_base_arguments():
    """The walk finds the commands; BASE must say how to run each (a new command needs a row)."""
    paths = {path for path, _ in LEAVES}
    assert {("prog", "list"), ("map", "list"), ("btf", "dump"), ("disasm",), ("asm",), ("run",),
            ("prog", "loadall"), ("vm", "run"), ("exporter",)} <= paths
    assert paths == set(BASE), f"BASE lacks {sorted(paths - set(BASE))}, has extra {sorted(set(BASE) - paths)}"


def _walk(files: Files) -> list[tuple[list[str], bool]]:
    commands = []
    for path, command in LEAVES:
        commands += [(argv, is_protocol(command)) for argv in invocations(path, command, files)]
    for group in GROUPS:
        commands += [([*group, "no-such-command"], False), ([*group, "--no-such-option"], False)]
    return commands


@pytest.mark.slow
def test_ebpfpy_bad_arguments_as_root(files):
    """As root: each bad value gets past the permission checks to the command's own."""
    check_ebpfpy(_walk(files), files)


@pytest.mark.slow
def test_ebpfpy_bad_arguments_as_nobody(files, nobody):
    """As nobody, without capabilities: the same command lines, refused cleanly."""
    commands = _walk(files)
    check_ebpfpy(commands, files, nobody=nobody)
    # the BASE command lines that need privileges fail as nobody (and not by accident of a bad value)
    base = [(list(path) + [w for ws in BASE[path][0].values() for w in _fill(ws, files)] + _fill(BASE[path][1], files))
            for path in (("prog", "list"), ("map", "list"), ("prog", "show"), ("run",))]
    for proc in run_all([["-c", CLI, *argv] for argv in base], nobody=nobody):
        assert proc.returncode == 1 and proc.stderr.startswith("ERROR: "), (proc.args, proc.stderr)


# --------------------------------------------------------------------------
# pybpftrace


def pybpftrace_flags(modern: bool) -> dict[str, bool]:
    """Each flag as written on a command line (`-p`, `--include`) -> whether it takes a value,
    from pybpftrace's getopt tables for bpftrace 0.26 (`modern`) or 0.17."""
    from ebpfpy.bpftrace import cli

    short, long = (cli.MODERN_SHORT, cli.MODERN_LONG) if modern else (cli.SHORT, cli.LONG)
    flags = {f"-{name}": takes for name, takes in short.items()}
    flags.update({f"--{name}": takes for name, (takes, _) in long.items()})
    return flags


# Scripts that fail in the compiler, at load or at attach (probes that do not exist, targets that
# are not there, values out of range); MISSING and GARBAGE stand for those Files paths.
BAD_SCRIPTS = [
    "begin { @x = 1 + }",
    "tracepoint:nosuch:nosuch { exit(); }",
    "kprobe:ebpfpy_no_such_function { exit(); }",
    "kfunc:ebpfpy_no_such_function { exit(); }",
    "rawtracepoint:ebpfpy_no_such_tracepoint { exit(); }",
    "uprobe:MISSING:f { exit(); }",
    "uprobe:GARBAGE:f { exit(); }",
    "uprobe:/bin/sh:ebpfpy_no_such_symbol { exit(); }",
    "usdt:MISSING:p:n { exit(); }",
    "usdt:/bin/sh:p:n { exit(); }",
    "interval:s:0 { exit(); }",
    "interval:s:-1 { exit(); }",
    "interval:s:" + BIG + " { exit(); }",
    "profile:hz:-1 { exit(); }",
    "software:nosuch:1 { exit(); }",
    "watchpoint:0x0:8:rw { exit(); }",
    "iter:nosuch { exit(); }",
    "begin { @x = $" + BIG + "; exit(); }",
    "begin { @ = kstack(99999); exit(); }",
    "begin { $x = (struct ebpfpy_no_such_struct *)0; exit(); }",
    "begin { print(@nosuch); exit(); }",
]


def problems_pybpftrace(proc: subprocess.CompletedProcess) -> str | None:
    err = proc.stderr
    if "Traceback" in err or "internal error" in err:
        return "a traceback or an internal error"
    if proc.returncode not in (0, 1):
        return f"exit status {proc.returncode}"
    # bpftrace's own forms vary (`ERROR: ...`, getopt's message and the usage, clang's `fatal error:`
    # for a missing --include, 0.17's `No probes to attach` on stdout): only silence is wrong.
    if proc.returncode == 1 and not (err.strip() or proc.stdout.strip()):
        return "exit status 1 without a message"
    return None


def check_pybpftrace(commands: list[tuple[list[str], dict]], files: Files, nobody=None) -> None:
    """Run every (argv, extra environment) and fail listing every command line that ended badly."""
    failures = []
    by_env: dict[tuple, list[list[str]]] = {}
    for argv, (_, extra) in zip(isolate([argv for argv, _ in commands], files), commands):
        by_env.setdefault(tuple(sorted(extra.items())), []).append(argv)
    for extra, argvs in by_env.items():
        env = {**os.environ, **dict(extra)}
        if nobody is not None:  # nobody's environment, plus the variables under test
            nobody.env.update(dict(extra))
        try:
            results = run_all([["-m", "ebpfpy.bpftrace", *argv] for argv in argvs], nobody=nobody, env=env,
                              cwd=files.directory)
        finally:
            if nobody is not None:
                for name, _ in extra:
                    nobody.env.pop(name, None)
        for argv, proc in zip(argvs, results):
            problem = problems_pybpftrace(proc)
            if problem:
                failures.append(f"{' '.join(f'{k}={v}' for k, v in extra)} pybpftrace {' '.join(argv)}: {problem}\n"
                                f"    stderr: {proc.stderr.strip()[-600:]!r}")
    assert not failures, f"{len(failures)} of {len(commands)} command lines:\n" + "\n".join(failures)


def _pybpftrace_walk(files: Files, scripts_only: bool = False) -> list[tuple[list[str], dict]]:
    from ebpfpy.bpftrace import cli

    commands = []
    for compat, program in (("0.26", 'begin { printf("hi\\n"); exit(); }'),
                            ("0.17", 'BEGIN { printf("hi\\n"); exit(); }')):
        env = {"PYBPFTRACE_COMPAT": compat}
        commands += [(["-e", script.replace("MISSING", files.missing).replace("GARBAGE", files.garbage)], env)
                     for script in BAD_SCRIPTS]
        commands += [([files.missing], env), ([files.garbage], env), ([files.directory], env)]
        commands += [(["-p", files.free_pid, "-e", program], env), (["-e", program], env)]
        if scripts_only:
            continue
        flags = pybpftrace_flags(modern=compat == "0.26")
        for flag, takes in flags.items():
            if not takes:
                if flag.startswith("--"):
                    commands.append(([f"{flag}=x", "-e", program], env))
                continue
            commands.append((["-e", program, flag], env))  # its value missing
            if compat == "0.26":  # 0.26's tables hold 0.17's flags too
                bad = [files.missing, files.directory, files.garbage, "-1", BIG]
                commands += [([flag, value, "-e", program], env) for value in bad]
        commands += [(["--no-such-flag"], env), (["-Z"], env), ([], env)]
    for name in cli.ENV_INTS:
        commands += [(["-e", 'begin { exit(); }'], {name: value}) for value in ("abc", "0", BIG)]
    return commands


@pytest.mark.slow
def test_pybpftrace_bad_arguments_as_root(files):
    check_pybpftrace(_pybpftrace_walk(files), files)


@pytest.mark.slow
def test_pybpftrace_bad_scripts_as_nobody(files, nobody):
    """As nobody, where most scripts fail at the first bpf() call or at reading tracefs."""
    check_pybpftrace(_pybpftrace_walk(files, scripts_only=True), files, nobody=nobody)


def test_pinning_outside_bpffs_names_the_cause(files, tmp_path):
    """BPF_OBJ_PIN outside bpffs fails with EPERM, which reads like a missing privilege: `prog
    loadall` says where pins can live instead, before loading or making any directory."""
    from ebpfpy import bpffs

    assert not bpffs.on_bpffs(str(tmp_path / "a" / "b"))
    if files.obj == files.garbage:
        pytest.skip("no BPF object (clang-19)")
    for argv in ([files.obj, str(tmp_path / "progs")],
                 [files.obj, f"{files.pin_dir}-maps", "--pinmaps", str(tmp_path / "maps")]):
        (proc,) = run_all([["-c", CLI, "prog", "loadall", *argv]], cwd=str(tmp_path))
        assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
        assert "not on a BPF filesystem" in proc.stderr and "EPERM" not in proc.stderr, proc.stderr
    assert sorted(os.listdir(tmp_path)) == [] and not os.path.exists(f"{files.pin_dir}-maps")
