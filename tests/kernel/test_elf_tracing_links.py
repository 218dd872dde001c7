"""Link types for clang-built objects that need the tracing side of the kernel: BPF iterators
(``iter/task``, ``iter/bpf_map``: a link, BPF_ITER_CREATE, the text read back), and ``ebpfpy run``
printing an iterator's output; trampoline programs by section name (``fentry/``, ``fexit/`` on
the kernel's BPF test function, which BPF_PROG_TEST_RUN calls, ``fmod_ret/`` on a security hook,
``lsm/``), and the one-line error where the kernel has no trampolines; kprobe_multi links
(``kprobe.multi/PATTERN``, ``kretprobe.multi/NAME``: one link for every function matched).

The objects come from tests/bpf_objects (clang-19 here; in the qemu guest, which has no
compiler, the runner's prebuilt copies: sources marked ``ebpfpy-vm: prebuild``). Markers
probe the kernel (``iter``, ``fentry``, ``kprobe_multi``), so a test skips with the reason where
the feature is missing and runs in the guests (tests/vm/run). After every test nothing of
ours is left: the links and programs are gone (test_links' ``Leaks``) and so are our fds.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from helpers import bpf_object
from test_links import Leaks, own_fds

from ebpfpy import features
from ebpfpy.elf import ObjectError, load_object
from ebpfpy.sys.consts import LinkType

pytestmark = [pytest.mark.kernel, pytest.mark.btf]


@pytest.fixture
def no_leaks():
    """test_links' check: what the test held while attached (``snapshot()``) is gone after it."""
    fds = own_fds()
    tracker = Leaks()
    yield tracker
    tracker.check()
    assert own_fds() == fds


@pytest.fixture(scope="module")
def objdir(tmp_path_factory):
    return tmp_path_factory.mktemp("tracing_links")


@pytest.fixture(scope="module")
def iters(objdir):
    return bpf_object("iters", objdir)


def _comm() -> str:
    with open("/proc/self/comm") as f:
        return f.read().strip()


# ---------------------------------------------------------------------------
# iterators

@pytest.mark.iter
def test_iter_task_prints_each_thread_of_this_process(iters, no_leaks):
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, daemon=True)
    worker.start()
    try:
        with load_object(iters) as obj:
            obj.globals["target_tgid"] = os.getpid()
            prog = obj.programs["dump_task"]
            assert prog.is_iter and prog.prog_type.name == "TRACING"
            link = prog.attach_iter()
            no_leaks.snapshot()
            lines = prog.read_iter().splitlines()
            tids = sorted(int(t) for t in os.listdir("/proc/self/task"))
            assert sorted(int(line.split()[0]) for line in lines) == tids
            assert f"{os.getpid()} {_comm()}" in lines
            assert obj.globals["tasks_seen"] == len(tids)
            prog.read_iter()  # each read runs the program again
            assert obj.globals["tasks_seen"] == 2 * len(tids)
            assert link.info().type == LinkType.ITER
        assert link.closed
    finally:
        stop.set()
        worker.join()


@pytest.mark.iter
def test_iter_task_link_for_one_process(iters, no_leaks):
    """attach_iter(pid=): the kernel walks that process's threads only (6.1+)."""
    child = subprocess.Popen(["sleep", "30"])
    try:
        with load_object(iters) as obj:
            prog = obj.programs["dump_task"]
            prog.attach_iter(pid=child.pid)
            no_leaks.snapshot()
            assert prog.read_iter().split() == [str(child.pid), "sleep"]
    finally:
        child.kill()
        child.wait()


@pytest.mark.iter
def test_iter_bpf_map_sees_the_objects_map(iters, no_leaks):
    with load_object(iters) as obj:
        obj.load()
        prog = obj.programs["dump_map"]
        prog.attach_iter()
        no_leaks.snapshot()
        map_id = obj.maps["iter_marker"].info().id
        assert f"map {map_id} iter_marker" in prog.read_iter().splitlines()


@pytest.mark.iter
def test_iterators_attach_by_section_name(iters, no_leaks):
    with load_object(iters) as obj:
        obj.globals["target_tgid"] = os.getpid()
        attached = obj.attach_all()
        assert sorted(a.probe for a in attached) == ["iter/bpf_map", "iter/task"]
        no_leaks.snapshot()
        assert f"{os.getpid()} {_comm()}" in obj.programs["dump_task"].read_iter().splitlines()
    # the programs' own links are closed with the object
    assert all(p.iter_link.closed for p in obj.programs.values())


@pytest.mark.iter
def test_read_iter_without_a_link_and_attach_trace_of_an_iterator_are_errors(iters):
    with load_object(iters) as obj:
        obj.load()
        with pytest.raises(ObjectError, match="no iterator link"):
            obj.programs["dump_task"].read_iter()
        with pytest.raises(ObjectError, match="not a tp_btf, fentry, fexit, fmod_ret or lsm program"):
            obj.programs["dump_task"].attach_trace()


@pytest.mark.iter
def test_ebpfpy_run_prints_the_iterator_and_returns(iters):
    """Only iterators attached: ``ebpfpy run`` prints their output once and exits without Ctrl-C."""
    child = subprocess.Popen(["sleep", "30"])
    try:
        proc = subprocess.run([sys.executable, "-c", "from ebpfpy.cli import main; main()", "run", iters,
                               "--set", f"target_tgid={child.pid}"], capture_output=True, text=True, timeout=120)
    finally:
        child.kill()
        child.wait()
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("Attached 2 probe(s)") and "Ctrl-C" not in proc.stderr
    lines = proc.stdout.splitlines()
    assert f"{child.pid} sleep" in lines
    assert any(line.startswith("map ") and line.endswith(" iter_marker") for line in lines)
    assert "tasks_seen = 1" in lines


# ---------------------------------------------------------------------------
# fentry, fexit, fmod_ret, lsm

@pytest.fixture(scope="module")
def tracing(objdir):
    return bpf_object("tracing", objdir)


TRAMPOLINES = ("on_test1", "on_test1_exit", "on_modify")


@pytest.mark.fentry
def test_fentry_fexit_fmod_ret_attach_by_section_name(tracing, no_leaks):
    with load_object(tracing) as obj:
        obj.globals["target_tgid"] = os.getpid()
        obj.programs["on_file_open"].autoload = False
        attached = obj.attach_all()
        assert sorted(a.probe for a in attached) == ["fentry:bpf_fentry_test1", "fexit:bpf_fentry_test1",
                                                     "fmod_ret:security_file_open"]
        no_leaks.snapshot()
        obj.programs["on_test1"].test_run()  # the kernel calls bpf_fentry_test1(1) .. test8
        for _ in range(3):
            open("/proc/self/comm").close()  # security_file_open
        values = {n: obj.globals[n] for n in ("entry_hits", "entry_arg", "exit_hits", "exit_ret", "modret_ret")}
        assert values == {"entry_hits": 1, "entry_arg": 1, "exit_hits": 1, "exit_ret": 2, "modret_ret": 0}
        assert obj.globals["modret_hits"] >= 3


@pytest.mark.fentry
def test_attach_trace_returns_a_link_closed_with_the_object(tracing, no_leaks):
    with load_object(tracing) as obj:
        obj.programs["on_file_open"].autoload = False
        link = obj.programs["on_test1_exit"].attach_trace()
        assert link.info().type == LinkType.TRACING and not link.closed
        no_leaks.snapshot()
        obj.programs["on_test1"].test_run()
        assert (obj.globals["exit_hits"], obj.globals["entry_hits"]) == (1, 0)
        with pytest.raises(ObjectError, match="is not an iterator"):
            obj.programs["on_test1"].attach_iter()
    assert link.closed


@pytest.mark.fentry
def test_lsm_hook_counts_file_opens(tracing, no_leaks):
    if features.vmlinux_func_id("bpf_lsm_file_open") is None:
        pytest.skip("the kernel has no BPF LSM hooks (CONFIG_BPF_LSM)")
    with load_object(tracing) as obj:
        obj.globals["target_tgid"] = os.getpid()
        for name in TRAMPOLINES:
            obj.programs[name].autoload = False
        obj.programs["on_file_open"].attach_trace()
        no_leaks.snapshot()
        for _ in range(3):
            open("/proc/self/comm").close()
        hits = obj.globals["lsm_hits"]
    if hits == 0:
        try:
            with open("/sys/kernel/security/lsm") as f:
                active = f.read()
        except OSError:
            active = "(securityfs not mounted)"
        if "bpf" not in active.split(","):
            pytest.skip(f"the BPF LSM is not active (lsm=: {active.strip()}); the hook attached but never runs")
    assert hits >= 3


def test_trampoline_programs_without_trampolines_are_one_line_errors(tracing):
    """Where the kernel has no trampolines (this machine), ``ebpfpy run`` says so in one line."""
    if features.has("fentry"):
        pytest.skip("this kernel has BPF trampolines")
    proc = subprocess.run([sys.executable, "-c", "from ebpfpy.cli import main; main()", "run", tracing],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.startswith("ERROR: ") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "loading program 'on_test1' failed" in proc.stderr and "no BPF trampolines for fentry" in proc.stderr


# ---------------------------------------------------------------------------
# kprobe_multi

@pytest.fixture(scope="module")
def kmulti(objdir):
    return bpf_object("kprobe_multi", objdir)


def _as_int(v) -> int:
    return int.from_bytes(v, "little") if isinstance(v, bytes) else int(v)


def _function_at(ip: int, names: list[str]) -> str | None:
    """Which of ``names`` the address is in (at its start, or just after an IBT endbr64)."""
    with open("/proc/kallsyms") as f:
        addrs = {p[2]: int(p[0], 16) for p in (line.split() for line in f) if len(p) >= 3 and p[2] in names}
    return next((n for n, a in addrs.items() if a <= ip < a + 16), None)


@pytest.mark.kprobe_multi
def test_kprobe_multi_sections_take_one_link_each(kmulti, no_leaks):
    from ebpfpy.attach.kprobe import kprobe_multi_symbols
    names = kprobe_multi_symbols("__x64_sys_get*id")
    assert {"__x64_sys_getpgid", "__x64_sys_getsid"} <= set(names)
    n = 5
    with load_object(kmulti) as obj:
        obj.globals["target_tgid"] = os.getpid()
        attached = obj.attach_all()
        assert sorted(a.probe for a in attached) == [f"kprobe:<{len(names)} functions>", "kretprobe:__x64_sys_getpgid"]
        assert all(len(a.parts) == 1 for a in attached)  # one link each
        entry = next(a for a in attached if a.probe.startswith("kprobe:"))
        assert [t.symbol for t in entry.target] == names
        no_leaks.snapshot()
        for _ in range(n):
            os.getpgid(0)
        for _ in range(2):
            os.getsid(0)
        calls = {_as_int(k): _as_int(v) for k, v in obj.maps["calls"].items()}
        by_name = {_function_at(ip, names): count for ip, count in calls.items()}
        assert (by_name.get("__x64_sys_getpgid"), by_name.get("__x64_sys_getsid")) == (n, 2), (calls, by_name)
        assert None not in by_name
        assert (obj.globals["rets"], obj.globals["ret_sum"]) == (n, n * os.getpgid(0))


@pytest.mark.kprobe_multi
def test_attach_kprobe_multi_with_names_and_cookies(kmulti, no_leaks):
    with load_object(kmulti) as obj:
        obj.globals["target_tgid"] = os.getpid()
        link = obj.programs["count_entry"].attach_kprobe_multi(["__x64_sys_getpgid", "__x64_sys_getsid"],
                                                               cookies=[1, 2])
        assert link.info().type == LinkType.KPROBE_MULTI
        no_leaks.snapshot()
        os.getpgid(0)
        os.getsid(0)
        assert sum(_as_int(v) for v in obj.maps["calls"].values()) == 2
        from ebpfpy.attach import ProbeNotFoundError
        with pytest.raises(ProbeNotFoundError, match="no kernel function matches"):
            obj.programs["count_return"].attach_kprobe_multi("ebpfpy_no_such_function*")
    assert link.closed


@pytest.mark.kprobes
@pytest.mark.kprobe_multi
def test_pybpftrace_kprobe_wildcard_is_one_program_and_one_link(no_leaks):
    from ebpfpy.bpftrace import Script
    from ebpfpy.sys import bpf
    from ebpfpy.sys.consts import AttachType

    me = os.getpid()
    script = Script(f"kprobe:__x64_sys_get*gid /pid == {me}/ {{ @ = count(); }} "
                    f"kretprobe:__x64_sys_get*gid /pid == {me}/ {{ @r = count(); }}")
    plans = script.compiled.probes
    symbols = [sorted(t.symbol for t in p.targets) for p in plans]
    assert symbols[0] == symbols[1] and "__x64_sys_getpgid" in symbols[0] and len(symbols[0]) >= 2
    assert all(p.expected_attach_type == AttachType.TRACE_KPROBE_MULTI for p in plans)
    with script.run() as run:
        ids = no_leaks.snapshot()
        assert len(ids["prog"] - no_leaks.before["prog"]) == 2
        links = [bpf.link_info(bpf.link_get_fd_by_id(i)) for i in ids["link"] - no_leaks.before["link"]]
        assert sorted(li.type_enum for li in links) == [LinkType.KPROBE_MULTI] * 2
        for _ in range(5):
            os.getpgid(0)
        assert run.maps["@"] == 5
        assert run.maps["@r"] == 5
    # `probe` is per target: one perf-event kprobe program each
    with Script(f"kprobe:__x64_sys_get*gid /pid == {me}/ {{ @[probe] = count(); }}").run() as run:
        no_leaks.snapshot()
        os.getpgid(0)
        assert run.maps["@"] == {"kprobe:__x64_sys_getpgid": 1}


def test_kprobe_multi_without_the_links_is_a_one_line_error(kmulti):
    if features.has("kprobe_multi"):
        pytest.skip("this kernel has kprobe_multi links")
    proc = subprocess.run([sys.executable, "-c", "from ebpfpy.cli import main; main()", "run", kmulti, "-d", "1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.startswith("ERROR: ") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "kprobe_multi links are not available" in proc.stderr and "kprobe.multi/" in proc.stderr
