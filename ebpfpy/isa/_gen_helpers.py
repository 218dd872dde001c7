"""Regenerate the helper id table in ``helpers.py`` from the kernel uapi header.

The kernel numbers its helpers by their position in the ``__BPF_FUNC_MAPPER(FN)`` list of
``linux/bpf.h`` (older headers write ``FN(name)``, newer ones ``FN(name, id, ##ctx)`` with the id
spelled out). We keep the result as a Python literal so importing ebpfpy never needs the header;
this script only rewrites the block between the ``BEGIN``/``END GENERATED`` markers.

Usage: ``python -m ebpfpy.isa._gen_helpers [/usr/include/linux/bpf.h]``
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

DEFAULT_HEADER = "/usr/include/linux/bpf.h"
_BEGIN = "# BEGIN GENERATED HELPER IDS"
_END = "# END GENERATED HELPER IDS"
_FN = re.compile(r"FN\(\s*(\w+)\s*(?:,\s*(\d+))?")


def parse_helper_ids(text: str) -> dict[str, int]:
    """Return ``{name: id}`` for every ``FN(...)`` entry of ``__BPF_FUNC_MAPPER``.

    The mapper is a macro continued with backslashes; it ends at the first line without one.
    """
    start = text.index("#define __BPF_FUNC_MAPPER(FN)")
    lines = []
    for line in text[start:].splitlines()[1:]:
        lines.append(line)
        if not line.rstrip().endswith("\\"):
            break
    ids: dict[str, int] = {}
    for match in _FN.finditer("\n".join(lines)):
        name, explicit = match.group(1), match.group(2)
        ids[name] = int(explicit) if explicit is not None else len(ids)
    return ids


def render(ids: dict[str, int]) -> str:
    """Format the table as the literal that sits between the markers."""
    body = "".join(
        f"    {i}: {name!r},\n" for name, i in sorted(ids.items(), key=lambda kv: kv[1])
    )
    return f"{_BEGIN}\n_HELPER_NAMES: dict[int, str] = {{\n{body}}}\n{_END}"


def main(argv: list[str]) -> int:
    header = argv[1] if len(argv) > 1 else DEFAULT_HEADER
    ids = parse_helper_ids(Path(header).read_text())
    target = Path(__file__).with_name("helpers.py")
    source = target.read_text()
    head, rest = source.split(_BEGIN, 1)
    _, tail = rest.split(_END, 1)
    target.write_text(head + render(ids) + tail)
    print(f"wrote {len(ids)} helper ids from {header} into {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
