"""``pybpftrace -l [pattern]`` and ``-lv``: print probes like bpftrace, from ebpfpy.attach.listing."""
from __future__ import annotations

import sys


def list_probes(pattern: str, verbose: bool = False, pid: int = -1) -> int:
    from ebpfpy.attach import listing
    from ebpfpy.attach.errors import AttachError

    lister = listing.list_probes_verbose if verbose else listing.list_probes
    try:
        for line in lister(pattern if pattern != "*" else None, pid=pid):
            sys.stdout.write(line + "\n")
    except AttachError as err:
        sys.stderr.write(f"ERROR: {err}\n")
        return 1
    except BrokenPipeError:
        pass
    return 0
