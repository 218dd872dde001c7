"""``pybpftrace``: the bpftrace 0.17 command line, on ebpfpy.

bpftrace reads its flags with GNU ``getopt_long``; users alias this command
to ``bpftrace`` and scripts start with ``#!/usr/bin/env pybpftrace``, so the
flags combine the same way (``-lv``, ``-kk``, ``-dd``, ``-e'prog'``), the
same mistakes print the same messages and the same usage text, and the exit
codes match. The parsing is a table (``SHORT``/``LONG``) read by a small
getopt, not argparse, whose help and error texts cannot be made to match.
Everything heavy is imported after the flags are read, so ``-h`` and errors
in the command line cost nothing.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
from dataclasses import dataclass, field

PROG = "pybpftrace"
VERSION = "v0.17.0"
# --version in 0.26 mode: bpftrace's ``bpftrace v0.26.1`` (its release), under our name
MODERN_VERSION = "v0.26.1"

# bpftrace 0.17's usage text (its layout and wording), under our name.
USAGE = """USAGE:
    {prog} [options] filename
    {prog} [options] - <stdin input>
    {prog} [options] -e 'program'

OPTIONS:
    -B MODE        output buffering mode ('full', 'none')
    -f FORMAT      output format ('text', 'json')
    -o file        redirect bpftrace output to file
    -e 'program'   execute this program
    -h, --help     show this help message
    -I DIR         add the directory to the include search path
    --include FILE add an #include file before preprocessing
    -l [search]    list probes
    -p PID         enable USDT probes on PID
    -c 'CMD'       run CMD and enable USDT probes on resulting process
    --usdt-file-activation
                   activate usdt semaphores based on file path
    --unsafe       allow unsafe builtin functions
    -q             keep messages quiet
    --info         Print information about kernel BPF support
    -k             emit a warning when a bpf helper returns an error (except read functions)
    -kk            check all bpf helper functions
    -V, --version  bpftrace version
    --no-warnings  disable all warning messages
    --metrics [ADDR]:PORT
                   serve the maps at http://ADDR:PORT/metrics for Prometheus
    --compat VERSION
                   the language and output of bpftrace VERSION ('0.17', '0.26')
    --dry-run      compile the program, attach nothing, then exit
    --emulate      run BEGIN, END, interval and profile probes in ebpfpy's BPF emulator (no root)

TROUBLESHOOTING OPTIONS:
    -v                      verbose messages
    -d                      (dry run) debug info
    -dd                     (dry run) verbose debug info
    --emit-elf FILE         (dry run) generate ELF file with bpf programs and write to FILE
    --emit-llvm FILE        write LLVM IR to FILE.original.ll and FILE.optimized.ll

ENVIRONMENT:
    BPFTRACE_STRLEN             [default: 64] bytes on BPF stack per str()
    BPFTRACE_NO_CPP_DEMANGLE    [default: 0] disable C++ symbol demangling
    BPFTRACE_MAP_KEYS_MAX       [default: 4096] max keys in a map
    BPFTRACE_CAT_BYTES_MAX      [default: 10k] maximum bytes read by cat builtin
    BPFTRACE_MAX_PROBES         [default: 512] max number of probes
    BPFTRACE_MAX_BPF_PROGS      [default: 512] max number of generated BPF programs
    BPFTRACE_LOG_SIZE           [default: 1000000] log size in bytes
    BPFTRACE_PERF_RB_PAGES      [default: 64] pages per CPU to allocate for ring buffer
    BPFTRACE_NO_USER_SYMBOLS    [default: 0] disable user symbol resolution
    BPFTRACE_CACHE_USER_SYMBOLS [default: auto] enable user symbol cache
    BPFTRACE_VMLINUX            [default: none] vmlinux path used for kernel symbol resolution
    BPFTRACE_BTF                [default: none] BTF file

EXAMPLES:
{prog} -l '*sleep*'
    list probes containing "sleep"
{prog} -e 'kprobe:do_nanosleep {{ printf("PID %d sleeping...\\n", pid); }}'
    trace processes calling sleep
{prog} -e 'tracepoint:raw_syscalls:sys_enter {{ @[comm] = count(); }}'
    count syscalls by process name
"""

# getopt's tables: short flag -> takes an argument; long name -> (takes an argument, key).
SHORT = {"d": False, "b": False, "B": True, "f": True, "e": True, "h": False, "l": False, "p": True,
         "v": False, "q": False, "c": True, "V": False, "o": True, "I": True, "k": False}
LONG = {"help": (False, "h"), "version": (False, "V"), "usdt-file-activation": (False, "usdt-file-activation"),
        "unsafe": (False, "unsafe"), "btf": (False, "btf"), "include": (True, "include"),
        "info": (False, "info"), "emit-llvm": (True, "emit-llvm"), "emit-elf": (True, "emit-elf"),
        "no-warnings": (False, "no-warnings"), "compat": (True, "compat"), "dry-run": (False, "dry-run"),
        "metrics": (True, "metrics"), "emulate": (False, "emulate")}

# bpftrace 0.26's getopt differs: -d takes the debug stages (comma-separated), -k given twice
# is an error, and these long forms of short flags exist. 0.17 mode keeps 0.17's tables.
MODERN_SHORT = {**SHORT, "d": True}
MODERN_LONG = {**LONG, "pid": (True, "p"), "cmd": (True, "c"), "output": (True, "o"), "list": (False, "l"),
               "quiet": (False, "q"), "warnings": (False, "k"), "verbose": (False, "v"),
               "probe-filter": (True, "probe-filter"), "fmt": (True, "fmt"), "mode": (True, "mode"),
               "test": (False, "test"), "bench": (False, "bench")}
# 0.26's --mode: what the run does with the script (--test, --bench and --fmt FILE are shorthands)
MODES = ("run", "format", "test", "bench", "codegen", "compiler-bench")
# 0.26's -d stages (``parse`` and ``dis`` exist only in its debug builds); any of them prints
# pybpftrace's own -d report, the verifier stages (and ``all``) with the verifier's logs, as -dd
DEBUG_STAGES = {"ast": 1, "types": 1, "codegen": 1, "codegen-opt": 1, "libbpf": 2, "verifier": 2, "all": 2}
KK_DEPRECATED = ("ERROR: USAGE: -kk has been deprecated. Use a single -k for runtime warnings for errors "
                 "in map lookups and probe reads.")

BUFFERING = ("line", "full", "none")
PID_MAX = 4194304

# Environment variables: name -> (Opts attribute, default). All are unsigned integers.
ENV_INTS = {
    "BPFTRACE_STRLEN": ("strlen", 64),
    "BPFTRACE_MAP_KEYS_MAX": ("map_keys_max", 4096),
    "BPFTRACE_MAX_PROBES": ("max_probes", 512),
    "BPFTRACE_PERF_RB_PAGES": ("perf_pages", 64),
    "BPFTRACE_CAT_BYTES_MAX": ("cat_bytes_max", 10240),
    "BPFTRACE_NO_USER_SYMBOLS": ("no_user_symbols", 0),
    "BPFTRACE_LOG_SIZE": ("log_size", 1000000),
}


class UsageError(Exception):
    """A command-line mistake: the message (may be empty), then the usage text, exit status 1."""


@dataclass
class Opts:
    """The command line, read."""

    program: str | None = None
    listing: bool = False
    verbose: bool = False
    debug: int = 0
    pid: int = -1
    command: str | None = None
    output: str | None = None
    fmt: str = "text"
    quiet: bool = False
    buffering: str | None = None
    helper_errors: int = 0
    include_dirs: list = field(default_factory=list)
    includes: list = field(default_factory=list)
    unsafe: bool = False
    warnings: bool = True
    info: bool = False
    version: bool = False
    help: bool = False
    emit_elf: str | None = None
    emit_llvm: str | None = None
    compat: str | None = None  # --compat=VERSION (None: PYBPFTRACE_COMPAT, else compat.DEFAULT)
    dry_run: bool = False  # --dry-run: compile everything, attach nothing
    metrics: str | None = None  # --metrics [ADDR]:PORT: serve the maps to Prometheus (metrics.py)
    emulate: bool = False  # --emulate: run in ebpfpy.vm, without a kernel (emulate.py)
    probe_filter: str | None = None  # --probe-filter REGEX (0.26): only the probes it matches, and begin/end
    fmt_file: str | None = None  # --fmt FILE
    mode: str = "run"  # --mode (0.26): run, format (--fmt FILE), test (--test), bench (--bench), ...
    args: list = field(default_factory=list)
    program_options: dict = field(default_factory=dict)  # after "--": --name[=value] (getopt)


# flag -> (Opts attribute, how the flag sets it). "b" (deprecated in bpftrace), "btf" and
# "usdt-file-activation" are accepted and set nothing.
FLAGS = {
    "e": ("program", "value"), "l": ("listing", "true"), "v": ("verbose", "true"), "d": ("debug", "count"),
    "p": ("pid", "pid"), "c": ("command", "value"), "o": ("output", "value"), "f": ("fmt", "value"),
    "q": ("quiet", "true"), "B": ("buffering", "buffering"), "k": ("helper_errors", "count"),
    "I": ("include_dirs", "append"), "include": ("includes", "append"), "unsafe": ("unsafe", "true"),
    "no-warnings": ("warnings", "false"), "info": ("info", "true"), "V": ("version", "true"),
    "h": ("help", "true"), "emit-elf": ("emit_elf", "value"), "emit-llvm": ("emit_llvm", "value"),
    "compat": ("compat", "value"), "dry-run": ("dry_run", "true"), "metrics": ("metrics", "value"),
    "emulate": ("emulate", "true"), "probe-filter": ("probe_filter", "value"), "mode": ("mode", "mode"),
    "fmt": ("mode", "fmt"), "test": ("mode", "test"), "bench": ("mode", "bench"),
}


def _buffering(value: str) -> str:
    if value not in BUFFERING:
        raise SystemExit(_fail("ERROR: USAGE: -B must be either 'line', 'full', or 'none'."))
    return value


def _apply(opts: Opts, key: str, value: str | None) -> None:
    """One flag into ``opts``; validates what bpftrace validates while reading flags."""
    if key not in FLAGS:
        return
    attr, how = FLAGS[key]
    if how == "true":
        setattr(opts, attr, True)
    elif how == "false":
        setattr(opts, attr, False)
    elif how == "count":
        setattr(opts, attr, getattr(opts, attr) + 1)
    elif how == "append":
        getattr(opts, attr).append(value)
    elif how == "pid":
        opts.pid = _parse_pid(value)
    elif how == "buffering":
        opts.buffering = _buffering(value)
    elif how == "mode":
        if value not in MODES:
            raise SystemExit(_fail(f"ERROR: USAGE: invalid option for --mode: {value}"))
        opts.mode = value
    elif how == "fmt":  # --fmt FILE: --mode format on FILE
        opts.mode, opts.fmt_file = "format", value
    elif how in ("test", "bench"):
        opts.mode = how
    else:
        setattr(opts, attr, value)


def _parse_pid(text: str) -> int:
    try:
        pid = int(text, 10)
    except ValueError:
        raise SystemExit(_fail(f"ERROR: pid '{text}' is not a valid decimal number")) from None
    if not 1 <= pid <= PID_MAX:
        raise SystemExit(_fail(f"ERROR: pid '{text}' out of valid pid range [1,{PID_MAX}]"))
    return pid


def _modern_flag(opts: Opts, key: str, value: str | None) -> bool:
    """0.26's own handling of -d STAGES and -k; True when it took the flag."""
    if key == "d":
        for stage in (part for part in value.split(",") if part):
            if stage not in DEBUG_STAGES:
                raise SystemExit(_fail(f"ERROR: USAGE: invalid option for -d: {stage}"))
            opts.debug = max(opts.debug, DEBUG_STAGES[stage])
        return True
    if key == "k" and opts.helper_errors:
        raise SystemExit(_fail(KK_DEPRECATED))
    return False


def parse_args(argv: list, modern: bool = False) -> Opts:
    """GNU getopt_long over ``argv``: options may follow operands, ``--`` ends options.

    Raises UsageError with getopt's own message for unknown flags and
    missing arguments. ``modern``: bpftrace 0.26's flags (``MODERN_SHORT``,
    ``MODERN_LONG``), else 0.17's.
    """
    short, long = (MODERN_SHORT, MODERN_LONG) if modern else (SHORT, LONG)

    def apply(key: str, value: str | None) -> None:
        if not (modern and _modern_flag(opts, key, value)):
            _apply(opts, key, value)

    opts = Opts()
    operands: list = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            if modern:  # today's named program options (getopt) stand among the parameters
                from .program_options import split_operands

                params, opts.program_options = split_operands(argv[i:])
                operands.extend(params)
            else:
                operands.extend(argv[i:])
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if name not in long:
                raise UsageError(f"{PROG}: unrecognized option '{arg}'")
            needs, key = long[name]
            if needs and not eq:
                if i >= len(argv):
                    raise UsageError(f"{PROG}: option '--{name}' requires an argument")
                value, i = argv[i], i + 1
            elif not needs and eq:
                raise UsageError(f"{PROG}: option '--{name}' doesn't allow an argument")
            apply(key, value if needs else None)
            continue
        if arg.startswith("-") and arg != "-":
            j = 1
            while j < len(arg):
                flag = arg[j]
                j += 1
                if flag not in short:
                    raise UsageError(f"{PROG}: invalid option -- '{flag}'")
                if short[flag]:
                    if j < len(arg):
                        value = arg[j:]
                    elif i < len(argv):
                        value, i = argv[i], i + 1
                    else:
                        raise UsageError(f"{PROG}: option requires an argument -- '{flag}'")
                    apply(flag, value)
                    break
                apply(flag, None)
            continue
        operands.append(arg)
    opts.args = operands
    return opts


def _fail(message: str) -> int:
    sys.stderr.write(message + "\n")
    return 1


def usage(stream=None) -> None:
    (stream or sys.stderr).write(USAGE.format(prog=PROG))


def read_env(environ=None) -> dict:
    """The ``BPFTRACE_*`` integers; bpftrace's message and exit 1 for a value that is not one."""
    environ = os.environ if environ is None else environ
    out = {}
    for name, (attr, default) in ENV_INTS.items():
        text = environ.get(name)
        if text is None:
            out[attr] = default
            continue
        try:
            value = int(text, 10)
        except ValueError:
            value = 0
        if value == 0 and attr not in ("no_user_symbols",):
            raise SystemExit(_fail(f"ERROR: Env var '{name}' did not contain a valid uint64_t, "
                                   "or was zero-valued."))
        out[attr] = value % (1 << 64)
    return out


def _read_script(path: str) -> tuple:
    """(source, filename for messages); ``-`` is stdin, named ``stdin`` as bpftrace does.

    Read as bytes: bytes that are not UTF-8 become surrogates (as in ``-e`` text and
    the other arguments), which the lexer reports and the messages print as the same bytes.
    """
    if path == "-":
        data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
        return data.decode("utf-8", "surrogateescape"), "stdin"
    with open(path, "rb") as fh:
        return fh.read().decode("utf-8", "surrogateescape"), path


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    for stream in (sys.stdout, sys.stderr):  # a script's non-UTF-8 bytes print back as they were
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")
    try:
        return _main(argv)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 0


def read_flags(argv: list) -> tuple:
    """(opts, compat, CompatError or None): the flags read with the tables of the language
    they select (``--compat``, else ``PYBPFTRACE_COMPAT``, else the default).

    0.17's tables are tried first, so 0.17 mode reads exactly as 0.17 did; a command line
    in 0.26 mode is read again with 0.26's (``-d`` takes a stage there). When 0.17's tables
    reject it, 0.26's may still accept it (``--pid``), if the language it selects is 0.26.
    Raises UsageError when the selected language's tables reject it.
    """
    from .compat import CompatError, default, is_modern, resolve

    try:
        opts, rejected = parse_args(argv), None
    except UsageError as err:
        opts, rejected = None, err
    if opts is None:
        said = io.StringIO()  # what 0.26's tables say (-kk's error) is said only in 0.26 mode
        try:
            with contextlib.redirect_stderr(said):
                opts = parse_args(argv, modern=True)
        except (UsageError, SystemExit) as err:
            try:
                modern = is_modern(_compat_given(argv) or default())
            except CompatError:
                modern = False
            if not modern:
                raise rejected from None
            sys.stderr.write(said.getvalue())
            raise err from None
    try:
        compat = resolve(opts.compat)
    except CompatError as err:
        if rejected is not None:
            raise rejected from None
        return opts, None, err
    if not is_modern(compat):
        if rejected is not None:
            raise rejected from None
        return opts, compat, None
    return (opts if rejected is not None else parse_args(argv, modern=True)), compat, None


def _compat_given(argv: list) -> str | None:
    """The ``--compat`` of a command line no table could read (its last, as getopt would keep)."""
    given = None
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg.startswith("--compat="):
            given = arg.partition("=")[2]
        elif arg == "--compat" and i + 1 < len(argv):
            given = argv[i + 1]
    return given


def _main(argv: list) -> int:
    try:
        opts, compat, compat_error = read_flags(argv)
    except UsageError as err:
        sys.stderr.write(f"{err}\n")
        usage()
        return 1
    if not argv:
        usage()
        return 1
    from .compat import is_modern

    # bpftrace 0.26 prints --help and --info on stdout (0.17: stderr)
    modern = compat is not None and is_modern(compat)
    if opts.version:
        sys.stdout.write(f"{PROG} {MODERN_VERSION if modern else VERSION}\n")
        return 0
    if opts.help:
        usage(sys.stdout if modern else None)
        return 0
    if opts.info:
        from .listing import info_text

        (sys.stdout if modern else sys.stderr).write(info_text())
        return 0
    if opts.pid > 0 and opts.command:
        sys.stderr.write("ERROR: USAGE: Cannot use both -c and -p.\n")
        usage()
        return 1
    if opts.emit_llvm:
        return _fail("ERROR: --emit-llvm: pybpftrace builds eBPF instructions without LLVM, so there is no IR; "
                     "use -d to see the instructions, annotated with the source")
    if opts.emit_elf:
        return _fail("ERROR: --emit-elf is not supported yet; use -d to see the instructions")
    if compat_error is not None:
        return _fail(str(compat_error))
    if opts.metrics is not None:
        from ebpfpy.exporter.serve import ServeError, parse_address

        try:
            parse_address(opts.metrics)
        except ServeError as err:
            return _fail(f"ERROR: --metrics: {err}")
    env = read_env()
    if opts.listing:
        from .listing import list_probes

        pattern = opts.args[0] if opts.args else None
        return list_probes(pattern, verbose=opts.verbose, pid=opts.pid, modern=modern)

    if opts.fmt_file is not None:  # --fmt FILE: that file, whatever else names a script
        try:
            source, filename = _read_script(opts.fmt_file)
        except OSError as err:
            return _fail(f"ERROR: failed to open file '{opts.fmt_file}': {err.strerror}")
        params = opts.args
    elif opts.program is not None:
        source, filename, params = opts.program, "stdin", opts.args
    elif opts.args:
        try:
            source, filename = _read_script(opts.args[0])
        except OSError as err:
            return _fail(f"ERROR: failed to open file '{opts.args[0]}': {err.strerror}")
        params = opts.args[1:]
    else:
        usage()
        return 1

    if opts.mode == "format":
        return _format(source, filename, compat)
    if opts.mode in ("codegen", "compiler-bench"):
        return _fail(f"ERROR: --mode {opts.mode} is not supported by pybpftrace (it has no LLVM stages to show)")

    from .driver import Options, run

    options = Options(
        source=source, filename=filename, params=tuple(params), pid=opts.pid, command=opts.command,
        output=opts.output, fmt=opts.fmt, quiet=opts.quiet, unsafe=opts.unsafe, debug=opts.debug,
        verbose=opts.verbose, warnings=opts.warnings, buffering=opts.buffering,
        helper_errors=opts.helper_errors, include_dirs=tuple(opts.include_dirs), includes=tuple(opts.includes),
        compat=compat, dry_run=opts.dry_run, metrics=opts.metrics, emulate=opts.emulate,
        probe_filter=opts.probe_filter, mode=opts.mode, program_options=opts.program_options, **env,
    )
    return run(options)


def _format(source: str, filename: str, compat: str) -> int:
    """--fmt / --mode format: the formatted script on stdout (formatter.py); the file stays as it is."""
    from .diagnostics import Diagnostic
    from .formatter import format_source

    try:
        text, why = format_source(source, filename, compat)
    except Diagnostic as diag:
        return _fail(diag.format(source, filename).rstrip("\n"))
    if why:
        sys.stderr.write(f"WARNING: {why}; the script is printed as it is\n")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
