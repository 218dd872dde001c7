"""Run one in-process measurement of the bench in the Python whose ebpfpy is being timed.

Usage (by harness.in_install): PYTHON bench/inproc.py REPORT MODULE FUNC JSON_ARGS

Imports bench/MODULE.py, calls FUNC(*JSON_ARGS) and writes REPORT (JSON): ``result``,
what FUNC returned, and ``ebpfpy``, the directory ebpfpy is imported from here (or why
it could not be). Run as a script, this file puts its own directory, bench/, first on
sys.path, never the current directory or the repository's root: the ebpfpy imported is
the one installed for PYTHON, the same that its pybpftrace runs.
"""
from __future__ import annotations

import importlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # -I / -P leave out even the script's directory
    sys.path.insert(0, HERE)


def main(argv: list) -> int:
    report, module, func, args = argv
    try:
        import ebpfpy

        where = os.path.dirname(os.path.abspath(ebpfpy.__file__))
    except Exception as err:  # reported; the measurement itself says whether it needs ebpfpy
        where = f"not importable: {type(err).__name__}: {err}"
    result = getattr(importlib.import_module(module), func)(*json.loads(args))
    with open(report, "w") as f:
        json.dump({"result": result, "ebpfpy": where}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
