"""The README's examples run as written."""
import os
import re
import shlex
import subprocess
import sys

import pytest

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def _python_blocks():
    with open(README) as fh:
        return re.findall(r"```python\n(.*?)```", fh.read(), re.S)


@pytest.mark.kernel
def test_python_tour_counts_getpid_exactly():
    block = _python_blocks()[0]
    proc = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "1000"
    assert "call 0x1" in proc.stdout


@pytest.mark.kernel
def test_first_command_counts_the_syscalls_of_a_command():
    line = next(text for text in open(README) if text.startswith("pip install . && pybpftrace"))
    script = re.search(r"-e '([^']*)'", line).group(1)
    command = re.search(r"-c '([^']*)'", line).group(1)
    # as a user runs it: in the default language (0.26), not the 0.17 of this directory's conftest
    env = {k: v for k, v in os.environ.items() if k != "PYBPFTRACE_COMPAT"}
    proc = subprocess.run([sys.executable, "-m", "ebpfpy.bpftrace", "-c", command, "-e", script],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"Attached \d+ probes\n", proc.stderr), proc.stderr
    assert proc.stdout.startswith(open("/etc/hostname").read())
    counts = dict(re.findall(r"^@\[(tracepoint:syscalls:sys_enter_\w+)\]: (\d+)$", proc.stdout, re.M))
    assert int(counts["tracepoint:syscalls:sys_enter_execve"]) == 1
    assert int(counts["tracepoint:syscalls:sys_enter_openat"]) >= 1


def _pybpftrace_section() -> str:
    with open(README) as fh:
        text = fh.read()
    start = text.index("## pybpftrace: bpftrace without LLVM\n")
    return text[start:text.index("\n## ", start + 1)]


def _default_language_env() -> dict:
    """pybpftrace as a user runs it: today's language (0.26), not the 0.17 of this directory's conftest."""
    return {k: v for k, v in os.environ.items() if k != "PYBPFTRACE_COMPAT"}


@pytest.mark.kernel
def test_pybpftrace_examples_run_as_written():
    """Every command of the pybpftrace section's examples, in the default language: the scripts
    compile, load and attach (``--dry-run``), the listings list."""
    block = re.search(r"```sh\n(.*?)```", _pybpftrace_section(), re.S).group(1)
    words = shlex.split(block, comments=True)
    commands, current = [], None
    for word in words:
        if word == "pybpftrace":
            current = []
            commands.append(current)
        else:
            current.append(word)
    assert len(commands) >= 10
    root = os.path.dirname(README)
    for args in commands:
        if "any script" in args:  # the -d line's placeholder
            continue
        if any(a.startswith("uretprobe:/bin/bash:") for a in args) and not os.path.exists("/bin/bash"):
            continue
        listing = args[0] in ("-l", "-lv")
        argv = [sys.executable, "-m", "ebpfpy.bpftrace", *([] if listing else ["--dry-run"]), *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=_default_language_env(),
                              cwd=root)
        assert proc.returncode == 0, (args, proc.stderr)
        assert "Traceback" not in proc.stdout + proc.stderr
        if listing:
            assert proc.stdout.startswith("tracepoint:syscalls:sys_enter_"), (args, proc.stdout[:500])
        else:
            assert proc.stdout == proc.stderr == "", (args, proc.stdout, proc.stderr)  # --dry-run: silent


def test_error_example_is_what_pybpftrace_prints():
    block = re.search(r"```text\n\$ (pybpftrace .*?\n)(.*?)```", _pybpftrace_section(), re.S)
    args = shlex.split(block.group(1))[1:]
    proc = subprocess.run([sys.executable, "-m", "ebpfpy.bpftrace", *args], capture_output=True, text=True,
                          timeout=60, env=_default_language_env())
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == block.group(2)
