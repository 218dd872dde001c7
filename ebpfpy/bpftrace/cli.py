"""``pybpftrace``: the bpftrace 0.17 command line, on ebpfpy.

argparse rather than click here: bpftrace's flags combine the way getopt's do
(``-lv``, ``-kk``, ``-dd``), and users alias this command to ``bpftrace``.
Everything heavy is imported after the flags are read, so ``--help`` and
errors in the command line cost nothing.
"""
from __future__ import annotations

import argparse
import os
import sys

USAGE = "pybpftrace [options] filename\n       pybpftrace [options] - <stdin input>\n       pybpftrace [options] -e 'program'"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pybpftrace", usage=USAGE, add_help=False,
                                description="High-level tracing language for Linux eBPF (bpftrace 0.17 compatible).")
    p.add_argument("-h", "--help", action="store_true", help="show this help message")
    p.add_argument("-e", dest="program", metavar="'program'", help="execute this program")
    p.add_argument("-l", dest="listing", action="store_true", help="list probes")
    p.add_argument("-v", dest="verbose", action="store_true", help="verbose messages")
    p.add_argument("-d", dest="debug", action="count", default=0, help="debug info dry run")
    p.add_argument("-p", dest="pid", type=int, default=-1, help="enable USDT probes on PID")
    p.add_argument("-c", dest="command", help="run CMD and enable USDT probes on resulting process")
    p.add_argument("-o", dest="output", metavar="file", help="redirect bpftrace output to file")
    p.add_argument("-f", dest="format", default="text", help="output format ('text', 'json')")
    p.add_argument("-q", dest="quiet", action="store_true", help="keep messages quiet")
    p.add_argument("-B", dest="buffering", default=None, help="output buffering mode ('full', 'none', 'line')")
    p.add_argument("-k", dest="helper_errors", action="count", default=0, help="emit a warning when a bpf helper returns an error")
    p.add_argument("-I", dest="include_dirs", action="append", default=[], help="add the directory to the include search path")
    p.add_argument("--include", dest="includes", action="append", default=[], help="add an #include file")
    p.add_argument("--unsafe", action="store_true", help="allow unsafe builtin functions")
    p.add_argument("--no-warnings", action="store_true", help="disable all warning messages")
    p.add_argument("--info", action="store_true", help="print information about kernel BPF support")
    p.add_argument("-V", "--version", action="store_true", help="bpftrace version")
    p.add_argument("args", nargs="*", help="script file, then positional parameters")
    return p


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"ERROR: env var {name} did not contain a valid uint64 value")


def main(argv=None) -> int:
    parser = build_parser()
    opts = parser.parse_args(argv)
    if opts.help:
        parser.print_help()
        return 0
    if opts.version:
        print("pybpftrace v0.17.0 (ebpfpy)")
        return 0
    if opts.listing:
        from .listing import list_probes

        pattern = opts.program or (opts.args[0] if opts.args else "*")
        return list_probes(pattern, verbose=opts.verbose, pid=opts.pid)

    if opts.program is not None:
        source, filename, params = opts.program, "stdin", opts.args
    elif opts.args:
        filename, params = opts.args[0], opts.args[1:]
        try:
            with open(filename) if filename != "-" else sys.stdin as fh:
                source = fh.read()
        except OSError as err:
            sys.stderr.write(f"ERROR: failed to open file '{filename}': {err.strerror}\n")
            return 1
        if filename == "-":
            filename = "stdin"
    else:
        sys.stderr.write("USAGE:\n    " + USAGE.replace("\n", "\n    ") + "\n")
        return 1

    from .driver import Options, run

    options = Options(
        source=source, filename=filename, params=tuple(params), pid=opts.pid, command=opts.command,
        output=opts.output, fmt=opts.format, quiet=opts.quiet, unsafe=opts.unsafe, debug=opts.debug,
        verbose=opts.verbose, warnings=not opts.no_warnings,
        strlen=_env_int("BPFTRACE_STRLEN", 64), map_keys_max=_env_int("BPFTRACE_MAP_KEYS_MAX", 4096),
        max_probes=_env_int("BPFTRACE_MAX_PROBES", 512), perf_pages=_env_int("BPFTRACE_PERF_RB_PAGES", 64),
    )
    return run(options)


if __name__ == "__main__":
    sys.exit(main())
