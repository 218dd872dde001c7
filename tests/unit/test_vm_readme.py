"""The README's "Learn BPF without root" example runs as written and prints what it shows."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def _section() -> str:
    with open(README) as f:
        text = f.read()
    start = text.index("## Learn BPF without root")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else None]


def test_learn_bpf_without_root_example(tmp_path):
    section = _section()
    script = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    expected = re.search(r"```text\n(.*?)```", section, re.S).group(1)
    if not shutil.which("ebpfpy"):  # not installed as a console script: the same entry point
        script = f"ebpfpy() {{ {sys.executable} -c 'from ebpfpy.cli import main; main()' \"$@\"; }}\n" + script
    proc = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected


def test_the_fault_the_readme_describes(tmp_path):
    from click.testing import CliRunner

    from ebpfpy.cli import main

    (tmp_path / "oops.s").write_text("r0 = *(u64 *)(r10 + 8)\nexit\n")
    result = CliRunner().invoke(main, ["vm", "run", str(tmp_path / "oops.s")])
    assert result.exit_code == 1
    assert ("read of 8 bytes at 0x7ff000000208 is out of bounds: 8 bytes past the end of stack frame 0"
            in result.output)
    assert "read of 8 bytes at 0x7ff000000208 is\nout of bounds: 8 bytes past the end of stack frame 0" in _section()
