"""The pipeline behind ``pybpftrace``: parse, check, compile, run; and every error in bpftrace's form.

No Python traceback reaches the user: a script error prints
``stdin:L:C-C: ERROR: ...`` with the source line and underline, a system
error prints ``ERROR: ...``, and both exit with status 1. Where bpftrace's
own line for a system error is terse (a kprobe that cannot attach), we keep
its line, so scripts grepping for it still work, and add the reason on the
next line.
"""
from __future__ import annotations

import errno
import os
import sys
from dataclasses import dataclass, field

from .compat import is_modern
from .program_options import ProgramOptionError


@dataclass
class Options:
    source: str
    filename: str = "stdin"
    params: tuple = ()
    pid: int = -1
    command: str | None = None
    output: str | None = None
    fmt: str = "text"
    quiet: bool = False
    unsafe: bool = False
    debug: int = 0
    verbose: bool = False
    warnings: bool = True
    buffering: str | None = None  # None: line, as bpftrace does by default
    helper_errors: int = 0  # -k / -kk: how many times -k was given (see helper_errors.py)
    strlen: int = 64
    map_keys_max: int = 4096
    max_probes: int = 512
    perf_pages: int = 64
    cat_bytes_max: int = 10240
    no_user_symbols: int = 0
    log_size: int = 1000000
    include_dirs: tuple = ()  # -I, searched before the system's include directories
    includes: tuple = ()  # --include: headers read as if the script #included them first
    # the language: "0.17" or "0.26" (compat.py); None: PYBPFTRACE_COMPAT, else compat.DEFAULT
    compat: str | None = None
    dry_run: bool = False  # --dry-run: compile (and report errors), attach and print nothing
    # today's language: what to do with an attach point that matches nothing (config.py);
    # 0.17 mode drops it silently, as bpftrace 0.17 did
    missing_probes: str = "error"
    metrics: str | None = None  # --metrics [ADDR]:PORT: serve the maps while running (metrics.py)
    emulate: bool = False  # --emulate: run in ebpfpy.vm, no kernel (emulate.py); BEGIN/END/interval/profile only
    probe_filter: str | None = None  # --probe-filter REGEX (0.26): the probes whose names it matches, and BEGIN/END
    mode: str = "run"  # 0.26's --mode: run, test (test: probes), bench (bench: probes)
    program_options: dict = field(default_factory=dict)  # today's -- --name=value (program_options.py)


def _err(text: str) -> int:
    sys.stderr.write(text if text.endswith("\n") else text + "\n")
    sys.stderr.flush()
    return 1


def compile_source(options: Options, cpid: int = 0, passes: list | None = None, warn=None):
    """Source text to (AST, CompiledScript); raises Diagnostic on any script error.

    With ``passes`` (a list, for ``-d``), the AST is dumped into it after
    each pass as ``(pass name, text)``, like bpftrace's "AST after: ...".
    ``warn`` receives semantic analysis's warnings (a list) when it has run;
    by default they are printed on stderr. The compiler's own warnings are in
    the result's ``warnings``.
    """
    from . import semantic_bridge
    from .compat import is_modern
    from .diagnostics import Diagnostic
    from .emit import Env, compile_script
    from .lexer import DEFAULT_INCLUDE_DIRS
    from .parser import parse

    try:
        program = parse(options.source, options.filename,
                        include_dirs=options.include_dirs + DEFAULT_INCLUDE_DIRS, includes=options.includes,
                        params=tuple(options.params), compat=options.compat)
        if passes is not None:
            passes.append(("parser", _dump(program)))
        if options.emulate:
            from .emulate import check_probes

            check_probes(program, options.source, options.filename)
        modern = is_modern(options.compat)
        early_warnings: list = []
        if modern:
            from . import config

            options, early_warnings = config.apply(program, options)
        analysis = semantic_bridge.check(program, options)
        if modern:
            program, dropped = config.drop_missing(program, options.missing_probes,
                                                   config.system_matches(options.pid), options.source,
                                                   options.filename)
            early_warnings += dropped
        program_options = {}
        if modern:
            from .program_options import resolve

            program_options = resolve(program, options.program_options)
        if passes is not None:
            passes.append(("Semantic", _dump(program)))
        warnings = early_warnings + list(getattr(analysis, "warnings", ()) or ())
        if warn is None:
            _print_warnings(warnings, options)
        else:
            warn(warnings)
        if options.verbose:
            from .printer import node_count

            print(f"INFO: node count: {node_count(program)}", file=sys.stderr, flush=True)
        env = Env(strlen=options.strlen, map_keys_max=options.map_keys_max, params=options.params,
                  cpid=cpid, pid=options.pid, unsafe=options.unsafe, source=options.source,
                  filename=options.filename, helper_errors=options.helper_errors, warnings=options.warnings,
                  per_target_programs=options.verbose, modern=modern,
                  program_options=program_options)
        resolver = getattr(getattr(analysis, "env", None), "resolver", None)
        if hasattr(resolver, "enum_value"):
            env.enum_value = resolver.enum_value
        return program, compile_script(program, env)
    except (Diagnostic, KeyboardInterrupt, ProgramOptionError, *_system_errors()):
        raise
    except Exception as err:  # not the script's fault: a bug in one of our passes
        raise InternalCompilerError(err) from err


class InternalCompilerError(Exception):
    """A compiler pass failed on a script it should have compiled or rejected: our bug."""


def _system_errors() -> tuple:
    """What the system, not the compiler, can raise while compiling (BTF, tracefs, ELF files)."""
    from ebpfpy.attach.errors import AttachError
    from ebpfpy.sys.errors import BPFError

    return (AttachError, BPFError, OSError)


def _dump(program) -> str:
    try:
        from .printer import dump

        return dump(program)
    except Exception as err:  # the dump is a nicety for -d; never let it stop the run
        return f"(AST dump not available: {err})\n"


def _print_warnings(warnings, options: Options, stream=None) -> None:
    """Warnings (semantic analysis, compiler) in bpftrace's form, on ``stream`` (default stderr);
    ``--no-warnings`` drops them."""
    if not options.warnings:
        return
    stream = stream or sys.stderr
    for warning in warnings or ():
        stream.write(format_warning(warning, options))


def format_warning(warning, options: Options) -> str:
    """One warning as bpftrace prints it (with its source line when it has a span), newline-ended."""
    text = warning.format(options.source, options.filename) if hasattr(warning, "format") else str(warning)
    text = text if text.startswith(("WARNING", "HINT: ", options.filename)) else f"WARNING: {text}"
    return text if text.endswith("\n") else text + "\n"


def _raise_nofile() -> None:
    """Every probe holds fds (a program, a perf event, a link): lift the soft limit to the hard one."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run(options: Options) -> int:
    """Everything ``pybpftrace`` does after reading its flags; returns the exit status."""
    from .diagnostics import Diagnostic

    _raise_nofile()

    error = option_error(options)
    if error:
        return _err(error)
    child = None
    # bpftrace 0.26 prints compile-time warnings on stdout once the compile succeeds, and on
    # stderr with the errors when it fails; 0.17 prints them on stderr as they come
    held = [] if is_modern(options.compat) else None
    try:
        if options.command and not options.debug and not options.dry_run:
            from .runtime import Child

            child = Child(options.command)
        passes = [] if options.debug else None
        program, script = compile_source(options, cpid=child.pid if child else 0, passes=passes,
                                         warn=None if held is None else held.extend)
        if held is None:
            _print_warnings(getattr(script, "warnings", ()), options)
        else:
            warnings, held = [*held, *getattr(script, "warnings", ())], None
            _print_warnings(warnings, options, sys.stdout)
            sys.stdout.flush()
        error = probe_limit_error(script, options) or apply_probe_filter(script, options.probe_filter)
        if error:
            return _err(error)
        if is_modern(options.compat) and not options.debug:
            from . import testbench

            if options.mode in testbench.KINDS:  # --test/--bench: those probes alone (--dry-run: compiled)
                return 0 if options.dry_run else testbench.run(script, options, options.mode, make_runtime)
            error = testbench.drop_on_demand(script)
            if error:
                _err(error)
                return testbench.NO_PROBES_STATUS
        if options.dry_run and not options.debug:
            return 0  # bpftrace 0.26's --dry-run: the script compiles; nothing is attached or printed
        if options.debug:
            from .explain import explain

            sys.stdout.write(explain(program, script, options.source, verify=options.debug > 1, passes=passes))
            return 0
        return _execute(options, script, child, program)
    except Diagnostic as diag:
        _print_warnings(held, options)
        if type(diag).__name__ == "NoProbesError":  # bpftrace 0.17 says this one on stdout
            sys.stdout.write(diag.message + "\n")
            return 1
        return _err(diag.format(options.source, options.filename))
    except ProgramOptionError as err:
        _print_warnings(held, options)
        return _err(str(err))
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        return 0
    except InternalCompilerError as bug:
        return _internal_compiler_error(bug.__cause__)
    except runtime_errors() as err:
        return _report_runtime_error(err, options)
    except Exception as err:  # a bug of ours: say so, without a traceback unless asked
        if os.environ.get("PYBPFTRACE_DEBUG"):
            raise
        return _err(f"ERROR: internal error: {type(err).__name__}: {err} "
                    "(set PYBPFTRACE_DEBUG=1 for a traceback; please report it)")
    finally:
        if child is not None:
            child.terminate()


def option_error(options: Options) -> str | None:
    """What bpftrace refuses before compiling (a string too long for the stack, -p of no
    process), as its ``ERROR: ...`` line; None when the options are usable."""
    if options.strlen > 200:
        return (f"ERROR: BPFTRACE_STRLEN too large to use on stack ({options.strlen}); "
                "see https://github.com/iovisor/bpftrace/issues/305")
    if options.pid > 0 and not _pid_exists(options.pid):
        return f"ERROR: {options.pid}: No such process"
    return None


SPECIAL = ("BEGIN", "END")


def apply_probe_filter(script, pattern: str | None) -> str | None:
    """``--probe-filter``: drop the programs of probes whose names the regular expression does
    not match (searched for in the name, as bpftrace does, on each probe the attach points
    expanded to); BEGIN and END always stay. The error text for a bad expression, else None.

    Applied to the compiled script rather than the AST because names are only known after
    wildcards are expanded; a program standing for several probes (a syscall dispatch) stays
    when any of them matches."""
    if pattern is None:
        return None
    import re

    try:
        regex = re.compile(pattern)
    except re.error as err:
        return f"ERROR: --probe-filter: invalid regular expression '{pattern}': {err}"
    script.probes = [plan for plan in script.probes
                     if plan.probe in SPECIAL or any(regex.search(name) for name in (plan.covers or (plan.probe,)))]
    return None


def probe_limit_error(script, options: Options) -> str | None:
    """bpftrace's refusal of more probes than BPFTRACE_MAX_PROBES; None within the limit."""
    n_probes = script.probe_count
    if n_probes <= options.max_probes:
        return None
    return (f"ERROR: Can't attach to {n_probes} probes because it exceeds the current "
            f"limit of {options.max_probes} probes.\nYou can increase the limit through "
            "the BPFTRACE_MAX_PROBES environment variable, but BE CAREFUL since a high "
            "number of probes attached can cause your system to crash.")


def _internal_compiler_error(err: BaseException) -> int:
    """A compiler bug, kept apart from the script's errors: one line, and the traceback
    when PYBPFTRACE_DEBUG is set."""
    if os.environ.get("PYBPFTRACE_DEBUG"):
        import traceback

        traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)
    return _err(f"ERROR: internal compiler error: {type(err).__name__}: {err} "
                "(set PYBPFTRACE_DEBUG=1 for the traceback; please report it)")


def _pid_exists(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def _open_output(path: str):
    try:
        return open(path, "w")
    except OSError as err:
        raise OutputError(f'Failed to open output file: "{path}": {err.strerror}') from None


class OutputError(Exception):
    """``-o FILE`` could not be opened."""


def _execute(options: Options, script, child, program=None) -> int:
    from .output.writer import make_writer

    stdout = _buffered_stdout()
    modern = is_modern(options.compat)
    try:
        writer = make_writer(options.fmt, stdout, buffering=options.buffering or "line", modern=modern)
    except ValueError as err:
        return _err(f"ERROR: {err}")
    stream = None
    if options.output:
        try:
            stream = _open_output(options.output)
        except OutputError as err:
            return _err(f"ERROR: {err}")
        writer.stream = stream
        if not modern:
            writer.separator_stream = stdout  # bpftrace 0.17's quirk, kept (0.26 writes them into the file)
    try:
        if options.metrics:
            from ebpfpy.exporter.serve import ServeError

            from .metrics import metrics_runtime
            from .runtime import Runtime

            try:
                base = Runtime
                if options.emulate:
                    from .emulate import EmulatedRuntime as base
                runtime = make_runtime(script, options, writer, child, runtime_class=metrics_runtime(base),
                                       metrics_address=options.metrics, program=program)
            except ServeError as err:
                return _err(f"ERROR: --metrics: {err}")
            return runtime.run()
        return make_runtime(script, options, writer, child).run()
    finally:
        writer.close()
        stdout.flush()
        if stream is not None:
            stream.close()


def make_runtime(script, options: Options, writer, child=None, runtime_class=None, **extra):
    """The Runtime for a compiled script under these options: the CLI's, and (with its own
    class and writer) ebpfpy.bpftrace.api's, so both run with the same settings."""
    if runtime_class is None and options.emulate:
        from .emulate import EmulatedRuntime as runtime_class
    elif runtime_class is None:
        from .runtime import Runtime as runtime_class

    runtime = runtime_class(script, writer, pid=options.pid if options.pid > 0 else (child.pid if child else -1),
                            child=child, quiet=options.quiet, unsafe=options.unsafe,
                            perf_pages=options.perf_pages, verbose=options.verbose,
                            cat_bytes_max=options.cat_bytes_max, log_size=options.log_size,
                            user_symbols=not options.no_user_symbols, **extra)
    runtime.sigint_kills_when_stopped = not is_modern(options.compat)
    runtime.usr1_prints_maps = not is_modern(options.compat)  # 0.22+: only a self:signal:SIGUSR1 probe
    # bpftrace 0.24+ ends a run that has nothing but BEGIN/END probes once BEGIN has run (E1, E24)
    runtime.stop_after_begin = (is_modern(options.compat) and not options.command and options.pid <= 0
                                and all(plan.probe in SPECIAL for plan in script.probes))
    return runtime


def _buffered_stdout():
    """Our own buffered text stream on fd 1: the writer decides when to flush (``-B``).

    ``sys.stdout`` may be unbuffered (``PYTHONUNBUFFERED``, ``python -u``),
    which turns every record into a write() system call; under a flood of
    events that alone halves the rate we can print at.
    """
    sys.stdout.flush()
    # surrogateescape: a script's non-UTF-8 bytes (printf("\xff")) print as those bytes, as in bpftrace
    return open(sys.stdout.fileno(), "w", buffering=1 << 16, closefd=False,
                encoding=sys.stdout.encoding or "utf-8", errors="surrogateescape")


def runtime_errors():
    """The failures at run time the CLI reports as ``ERROR: ...`` (``runtime_error_text``)."""
    from ebpfpy.attach.errors import AttachError
    from ebpfpy.sys.errors import BPFError

    from .runtime import ScriptError

    return (AttachError, BPFError, ScriptError, OSError, ValueError)


def _report_runtime_error(err, options: Options) -> int:
    return _err(runtime_error_text(err, options))


def runtime_error_text(err, options: Options) -> str:
    """What the CLI prints for a failure at run time (``ERROR: ...``, with the reason or the
    verifier's log where it has one)."""
    from ebpfpy.attach.errors import AttachError

    from .runtime import AttachFailure, VerifierRejection

    if isinstance(err, VerifierRejection):
        return _verifier_report(err, options)
    if isinstance(err, AttachFailure):
        return attach_failure_text(err.probe, err.error)
    if isinstance(err, AttachError):
        return f"ERROR: {str(err).strip()}"
    if isinstance(err, OSError) and err.errno == errno.EPERM:
        why = getattr(err, "detail", "")  # the real cause, where ebpfpy.sys.privileges found it
        return (f"ERROR: {err.strerror or err}: pybpftrace needs root (or CAP_BPF and CAP_PERFMON)"
                + (f": {why}" if why else ""))
    text = str(err).strip().strip("'\"")
    return f"ERROR: {text}"


# Why a probe kind cannot attach on this machine: kind -> (feature name, explanation).
_KIND_FEATURES = {
    "kprobe": ("kprobes", "kprobes are not available on this kernel (CONFIG_KPROBES is off)"),
    "kretprobe": ("kprobes", "kprobes are not available on this kernel (CONFIG_KPROBES is off)"),
    "kfunc": ("fentry", "fentry/kfunc programs are not available on this kernel"),
    "kretfunc": ("fentry", "fentry/kfunc programs are not available on this kernel"),
    "uprobe": ("uprobes", "uprobes are not available on this kernel (CONFIG_UPROBE_EVENTS is off)"),
    "uretprobe": ("uprobes", "uprobes are not available on this kernel (CONFIG_UPROBE_EVENTS is off)"),
}


def attach_failure_text(probe: str, error) -> str:
    """bpftrace's ``Error attaching probe: '...'`` line, then the reason in plain words."""
    kind = probe.split(":", 1)[0]
    lines = [f"ERROR: Error attaching probe: '{probe}'"]
    reason = None
    if kind in _KIND_FEATURES:
        from ebpfpy import features

        name, text = _KIND_FEATURES[kind]
        if not features.has(name):
            reason = text
    if reason is None and error is not None:
        reason = str(error).strip()
    if reason:
        lines.append(f"  reason: {reason}")
    return "\n".join(lines) + "\n"


def _verifier_report(err, options: Options) -> str:
    """The kernel's verdict on generated code, pointed back at the source line that produced it."""
    plan = err.plan
    log = err.error.log or ""
    lines = [f"ERROR: the kernel rejected the program for {plan.label or plan.probe} "
             f"({err.error.strerror or err.error}); this is a pybpftrace bug, please report it."]
    from ebpfpy.sys.errors import failing_insn

    spans = getattr(plan.builder, "spans", None) or []
    bad = failing_insn(log)
    source_lines = options.source.split("\n")
    if bad is not None and bad < len(spans) and spans[bad]:
        line = spans[bad][0]
        src = source_lines[line - 1] if 0 < line <= len(source_lines) else ""
        lines.append(f"{options.filename}:{line}: instruction {bad} was generated for: {src.strip()}")
    if log:
        tail = log.strip().split("\n")[-20:]
        lines.append("verifier log (last lines):")
        lines.extend("  " + t for t in tail)
    return "\n".join(lines) + "\n"
