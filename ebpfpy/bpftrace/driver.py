"""The pipeline behind ``pybpftrace``: parse, check, compile, run; and every error in bpftrace's form.

No Python traceback reaches the user: a script error prints
``stdin:L:C-C: ERROR: ...`` with the source line and underline, a system
error prints ``ERROR: ...``, and both exit with status 1.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from typing import Optional


@dataclass
class Options:
    source: str
    filename: str = "stdin"
    params: tuple = ()
    pid: int = -1
    command: Optional[str] = None
    output: Optional[str] = None
    fmt: str = "text"
    quiet: bool = False
    unsafe: bool = False
    debug: int = 0
    verbose: bool = False
    warnings: bool = True
    strlen: int = 64
    map_keys_max: int = 4096
    max_probes: int = 512
    perf_pages: int = 64


def _err(text: str) -> int:
    sys.stderr.write(text if text.endswith("\n") else text + "\n")
    return 1


def compile_source(options: Options, cpid: int = 0):
    """Source text to a CompiledScript (raises Diagnostic on any script error)."""
    from . import semantic_bridge
    from .codegen import Env, compile_script
    from .parser import parse

    program = parse(options.source, options.filename)
    semantic_bridge.check(program, options)
    env = Env(strlen=options.strlen, map_keys_max=options.map_keys_max, params=options.params,
              cpid=cpid, pid=options.pid, unsafe=options.unsafe, source=options.source,
              filename=options.filename)
    return program, compile_script(program, env)


def run(options: Options) -> int:
    from .diagnostics import Diagnostic

    if options.strlen > 200:
        return _err(f"ERROR: BPFTRACE_STRLEN too large to use on stack ({options.strlen}); "
                    "see https://github.com/iovisor/bpftrace/issues/305")
    child = None
    try:
        if options.command:
            from .runtime import Child

            child = Child(options.command)
        program, script = compile_source(options, cpid=child.pid if child else 0)
        n_probes = len(script.probes)
        if n_probes > options.max_probes:
            return _err(f"ERROR: Can't attach to {n_probes} probes because it exceeds the current "
                        f"limit of {options.max_probes} probes.\nYou can increase the limit through "
                        "the BPFTRACE_MAX_PROBES environment variable, but BE CAREFUL since a high "
                        "number of probes attached can cause your system to crash.")
        if options.debug:
            from .explain import explain

            sys.stdout.write(explain(program, script, options.source))
            return 0
        return _execute(options, script, child)
    except Diagnostic as diag:
        return _err(diag.format(options.source, options.filename))
    except KeyboardInterrupt:
        return 0
    except _runtime_errors() as err:
        return _report_runtime_error(err, options)
    except Exception as err:  # a bug of ours: say so, without a traceback unless asked
        if os.environ.get("PYBPFTRACE_DEBUG"):
            raise
        return _err(f"ERROR: internal error: {type(err).__name__}: {err} "
                    "(set PYBPFTRACE_DEBUG=1 for a traceback; please report it)")
    finally:
        if child is not None:
            child.terminate()


def _execute(options: Options, script, child) -> int:
    from .output.writer import make_writer
    from .runtime import Runtime

    stream = open(options.output, "w") if options.output else sys.stdout
    try:
        writer = make_writer(options.fmt, stream)
    except ValueError as err:
        return _err(f"ERROR: {err}")
    try:
        runtime = Runtime(script, writer, pid=options.pid if options.pid > 0 else (child.pid if child else -1),
                          child=child, quiet=options.quiet, unsafe=options.unsafe,
                          perf_pages=options.perf_pages, verbose=options.verbose)
        return runtime.run()
    finally:
        writer.close()
        if stream is not sys.stdout:
            stream.close()


def _runtime_errors():
    from ebpfpy.attach.errors import AttachError
    from ebpfpy.sys.errors import BPFError

    from .runtime import ScriptError

    return (AttachError, BPFError, ScriptError, OSError, ValueError)


def _report_runtime_error(err, options: Options) -> int:
    from .runtime import VerifierRejection

    if isinstance(err, VerifierRejection):
        return _err(_verifier_report(err, options))
    text = str(err).strip().strip("'\"")
    return _err(f"ERROR: {text}")


def _verifier_report(err, options: Options) -> str:
    """The kernel's verdict on generated code, pointed back at the source line that produced it."""
    plan = err.plan
    log = err.error.log or ""
    lines = [f"ERROR: the kernel rejected the program for {plan.label or plan.probe} "
             f"({err.error.strerror or err.error}); this is a pybpftrace bug, please report it."]
    spans = getattr(plan.builder, "spans", None) or []
    bad = _failing_insn(log)
    if bad is not None and bad < len(spans) and spans[bad]:
        line = spans[bad][0]
        src = options.source.split("\n")[line - 1] if 0 < line <= len(options.source.split("\n")) else ""
        lines.append(f"{options.filename}:{line}: instruction {bad} was generated for: {src.strip()}")
    if log:
        tail = log.strip().split("\n")[-20:]
        lines.append("verifier log (last lines):")
        lines.extend("  " + t for t in tail)
    return "\n".join(lines) + "\n"


def _failing_insn(log: str) -> Optional[int]:
    found = re.findall(r"^(\d+): \(", log, re.M)
    return int(found[-1]) if found else None
