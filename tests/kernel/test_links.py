"""BPF link types attached for real, each with traffic or a trigger and a value read back:
uprobe_multi (API, wildcard provider, pybpftrace), XDP (and BPF_PROG_TEST_RUN), tcx, cgroup
programs; libbpf's section names for them in a clang-built object; ``ebpfpy run`` with
``--ifname``/``--cgroup``.

Network tests run in a network namespace of their own (``ip netns``), entered by one thread
(setns), so its ``lo`` carries only the test's packets; cgroup tests create a child cgroup
under the cgroup2 mount and run their trigger in it. After every test nothing of ours is
left: the links and programs the test held are gone (bpftool no longer lists them), and so
are its fds, cgroup directory and namespace.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest
from helpers import write_vmlinux_h
from test_attach_common import compile_c, counting_insns, new_counts, own_fds

from ebpfpy import features
from ebpfpy.attach import ProbeNotFoundError, attach, attach_uprobe_multi
from ebpfpy.attach.binary import elf_image
from ebpfpy.bpffs import find_cgroup2
from ebpfpy.isa.builder import FP, R0, R1, R2, R6, R7, Builder
from ebpfpy.links import CGROUP_ATTACH_TYPES, attach_xdp
from ebpfpy.progs import Program
from ebpfpy.sys import bpf
from ebpfpy.sys.consts import AttachType, LinkType, XdpFlag
from ebpfpy.sys.errors import BPFError

pytestmark = [pytest.mark.kernel]

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "bpf_objects")
ROOT = os.path.dirname(os.path.dirname(HERE))
N = 20
PORT = 4242  # inside a namespace of our own: nothing else listens there

# slots of links.bpf.c's `counts`
XDP_IN, TCX_IN, TCX_OUT, CG_EGRESS, CG_SOCK, CG_SYSCTL, CG_DEV, UPROBES, URETPROBES, URET_SUM = range(10)
GETTERS = {"prog": bpf.prog_get_fd_by_id, "map": bpf.map_get_fd_by_id, "link": bpf.link_get_fd_by_id}


# ---------------------------------------------------------------------------
# nothing left behind

def wait_until(condition, timeout: float = 10.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)
    return found


def held_ids() -> dict:
    """Kernel ids of the bpf objects this process holds fds for (from /proc/self/fdinfo)."""
    ids: dict = {"prog": set(), "map": set(), "link": set()}
    for name in os.listdir("/proc/self/fdinfo"):
        try:
            with open(f"/proc/self/fdinfo/{name}") as fh:
                text = fh.read()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(":")
            kind = key.strip().removesuffix("_id")
            if kind in ids and key.strip().endswith("_id"):
                ids[kind].add(int(value))
                break
    return ids


def bpftool_ids(what: str) -> set | None:
    if not shutil.which("bpftool"):
        return None
    out = subprocess.run(["bpftool", "-j", what, "list"], capture_output=True, text=True, check=True).stdout
    return {e["id"] for e in json.loads(out or "[]")}


PROGRAMS = ("count_xdp", "count_tcx_in", "count_tcx_out", "count_egress", "count_sock", "count_sysctl",
            "count_dev", "count_multi", "sum_multi_ret")


def ids_of_programs(names: set) -> dict:
    """Ids of the programs with these names and of the links holding them, as bpftool lists them."""
    if not shutil.which("bpftool"):
        pytest.skip("needs bpftool to find another process's links")
    progs = json.loads(subprocess.run(["bpftool", "-j", "prog", "list"], capture_output=True, text=True,
                                      check=True).stdout or "[]")
    prog_ids = {p["id"] for p in progs if p.get("name") in names}
    links = json.loads(subprocess.run(["bpftool", "-j", "link", "list"], capture_output=True, text=True,
                                      check=True).stdout or "[]")
    return {"prog": prog_ids, "link": {e["id"] for e in links if e.get("prog_id") in prog_ids}}


class Leaks:
    """Ids the test held (``snapshot()`` while attached) must all be gone after it."""

    def __init__(self):
        self.before = held_ids()
        self.seen: dict = {"prog": set(), "map": set(), "link": set()}

    def snapshot(self) -> dict:
        now = held_ids()
        for kind, ids in now.items():
            self.seen[kind] |= ids - self.before[kind]
        return now

    def check(self) -> None:
        assert self.seen["prog"], "the test took no snapshot while its programs were loaded"

        def alive():
            left = []
            for kind, ids in self.seen.items():
                for obj_id in ids:
                    try:
                        GETTERS[kind](obj_id).close()
                        left.append((kind, obj_id))
                    except BPFError:
                        pass
            return not left

        wait_until(alive, what=f"our links, programs and maps to go ({self.seen})")
        for what in ("link", "prog"):
            listed = bpftool_ids(what)
            if listed is not None:
                assert not listed & self.seen[what], f"bpftool still lists our {what}s"


@pytest.fixture
def leaks():
    fds = own_fds()
    tracker = Leaks()
    yield tracker
    tracker.check()
    assert own_fds() == fds


# ---------------------------------------------------------------------------
# a network namespace, a child cgroup

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
CLONE_NEWNET = 0x40000000


class NetNS:
    def __init__(self, name: str):
        self.name = name

    def run(self, fn, *args):
        """``fn(*args)`` in a thread that has entered the namespace (sockets, ifindexes, links
        it makes are the namespace's); its exception is re-raised here."""
        out: dict = {}

        def body():
            try:
                fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY | os.O_CLOEXEC)
                try:
                    if _libc.setns(fd, CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns")
                finally:
                    os.close(fd)
                out["value"] = fn(*args)
            except BaseException as exc:
                out["error"] = exc

        thread = threading.Thread(target=body, name="in-netns")
        thread.start()
        thread.join()
        if "error" in out:
            raise out["error"]
        return out.get("value")

    def exec(self, *argv: str) -> list[str]:
        """``argv`` run in the namespace (nsenter: unlike ``ip netns exec`` it keeps /sys, and
        with it the cgroup2 mount)."""
        return ["nsenter", f"--net=/run/netns/{self.name}", *argv]


def _netns_listed(name: str) -> bool:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return any(line.split()[0] == name for line in out.splitlines() if line.strip())


@pytest.fixture
def netns():
    name = f"ebpfpy-links-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    if shutil.which("ip") is None:
        pytest.skip("no ip(8) here (iproute2)")
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:  # e.g. the qemu guest's initramfs: no /run/netns to bind-mount on
        pytest.skip(f"cannot make a network namespace here: {made.stderr.strip()}")
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield NetNS(name)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)
    assert not _netns_listed(name) and not os.path.exists(f"/run/netns/{name}")


class CGroup:
    def __init__(self, path: str):
        self.path = path

    def argv(self, *argv: str) -> list[str]:
        """``argv`` run in this cgroup: a shell moves itself in, then execs it."""
        return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', self.path, *argv]

    def python(self, code: str, netns: NetNS | None = None) -> str:
        argv = self.argv(sys.executable, "-c", code)
        proc = subprocess.run(netns.exec(*argv) if netns else argv, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout


@pytest.fixture
def cgroup():
    root = find_cgroup2()
    path = os.path.join(root, f"ebpfpy-links-{os.getpid()}-{time.monotonic_ns() % 10**6}")
    os.mkdir(path)
    try:
        yield CGroup(path)
    finally:
        def removed():
            try:
                os.rmdir(path)
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    return True
                if exc.errno != errno.EBUSY:
                    raise
                return False
            return True

        wait_until(removed, what=f"{path} to be empty and removed")
    assert not os.path.exists(path)


def udp_roundtrip(n: int, port: int = PORT, size: int = 16) -> None:
    """``n`` datagrams to 127.0.0.1:port, each waited for on the receiving socket."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", port))
        rx.settimeout(10)
        for i in range(n):
            tx.sendto(bytes([i % 256]) * size, ("127.0.0.1", port))
            assert rx.recv(2048)[0] == i % 256


# ---------------------------------------------------------------------------
# test binaries and the clang-built object

@pytest.fixture(scope="module")
def umt(tmp_path_factory):
    return compile_c("uprobe_multi_target.c", str(tmp_path_factory.mktemp("umt")), "-O2")


def run_umt(path: str, n: int = N) -> int:
    return int(subprocess.run([path, str(n)], capture_output=True, text=True, check=True).stdout)


def umt_sum(n: int) -> int:
    return n * (n + 1) // 2 + 2 * 2 * n + 3 * 3 * n


@pytest.fixture(scope="module")
def links_obj(tmp_path_factory, umt):
    """links.bpf.c built with clang-19 (vmlinux.h from this kernel), its uprobe.multi sections
    naming the uprobe_multi_target binary."""
    if not shutil.which("clang-19"):
        pytest.skip("needs clang-19")
    out = tmp_path_factory.mktemp("links_obj")
    write_vmlinux_h(out)
    obj = str(out / "links.o")
    subprocess.run(["clang-19", "-O2", "-g", "-target", "bpf", f'-DUMT_PATH="{umt}"', "-I", str(out), "-I", SRC,
                    "-c", os.path.join(SRC, "links.bpf.c"), "-o", obj], check=True)
    return obj


def load_links(path: str, port: int = PORT, only: tuple = ()):
    from ebpfpy.elf import load_object

    obj = load_object(path)
    obj.globals["port"] = port
    for name, prog in obj.programs.items():
        prog.autoload = not only or name in only
    return obj.load()


def counts_of(obj) -> list[int]:
    m = obj.maps["counts"]
    return [m[i] for i in range(10)]


# ---------------------------------------------------------------------------
# uprobe_multi

def cookie_counter(counts) -> Program:
    """counts[bpf_get_attach_cookie()] += 1, loaded for uprobe_multi links."""
    b = Builder()
    b.mov(R6, R1)
    b.call("get_attach_cookie")
    b.jgt(R0, 7, "out")
    b.stx(4, FP, R0, -4)
    b.ld_map_fd(R1, counts)
    b.mov(R2, FP)
    b.add(R2, -4)
    b.call("map_lookup_elem")
    b.jeq(R0, 0, "out")
    b.mov(R1, 1)
    b.atomic("add", 8, R0, R1, 0)
    b.label("out")
    b.mov(R0, 0)
    b.exit()
    return Program.load("kprobe", b.build(), name="links_test", expected_attach_type="trace_uprobe_multi")


def multi_counter(counts, *, values=(), multi: bool = True) -> Program:
    return Program.load("kprobe", counting_insns(counts, values=values), name="links_test",
                        expected_attach_type="trace_uprobe_multi" if multi else None)


def ret_value(b):
    b.ldx(8, R7, R6, 80)  # pt_regs->ax
    b.lsh(R7, 32)
    b.arsh(R7, 32)  # an int


@pytest.mark.uprobes
@pytest.mark.uprobe_multi
def test_uprobe_multi_counts_each_function_by_cookie(umt, leaks):
    with new_counts(8) as counts, cookie_counter(counts) as prog:
        with attach_uprobe_multi(prog, umt, ["multi_a", "multi_b", "multi_c", "multi_d"], cookies=[1, 2, 3, 4]) as link:
            info = link.info()
            assert info.type_enum == LinkType.UPROBE_MULTI and info.prog_id == prog.info().id
            leaks.snapshot()
            assert run_umt(umt) == umt_sum(N)
            assert [counts[i] for i in range(5)] == [0, N, 2 * N, 3 * N, 0]
        run_umt(umt)  # detached: nothing more
        assert [counts[i] for i in range(5)] == [0, N, 2 * N, 3 * N, 0]


@pytest.mark.uprobes
@pytest.mark.uprobe_multi
def test_uretprobe_multi_pattern_sums_return_values(umt, leaks):
    with new_counts() as counts, multi_counter(counts, values=[ret_value]) as prog:
        # one pattern entry, one cookie for all it matches; uretprobes see the return value
        with attach_uprobe_multi(prog, umt, "multi_[ab]", retprobe=True):
            leaks.snapshot()
            run_umt(umt)
        assert counts[0] == N + 2 * N
        assert counts[1] == N * (N + 1) // 2 + 2 * 2 * N


@pytest.mark.uprobes
@pytest.mark.uprobe_multi
def test_uprobe_multi_file_offsets_and_pid_filter(umt, leaks):
    image = elf_image(umt)
    offsets = [image.vaddr_to_offset(image.symbol(name).vaddr) for name in ("multi_a", "multi_c")]
    with new_counts() as counts, multi_counter(counts) as prog:
        waiting = subprocess.Popen([umt, str(N), "wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            with prog.attach_uprobe_multi(umt, offsets, pid=waiting.pid):
                leaks.snapshot()
                run_umt(umt)  # another process: filtered out by the link's pid
                assert counts[0] == 0
                out, _ = waiting.communicate("go\n", timeout=30)
                assert int(out) == umt_sum(N)
                assert counts[0] == N + 3 * N
        finally:
            if waiting.poll() is None:
                waiting.kill()
                waiting.wait()


@pytest.mark.uprobes
@pytest.mark.uprobe_multi
def test_wildcard_probe_string_takes_one_link_for_a_multi_program(umt, leaks):
    """``attach(prog, "uprobe:BIN:multi_*")``: one uprobe_multi link for a program loaded for it,
    one perf event per function for any other; the counts agree."""
    with new_counts() as counts, multi_counter(counts) as multi, multi_counter(counts, multi=False) as plain:
        atts = attach(multi, f"uprobe:{umt}:multi_*")
        try:
            [att] = atts
            [link] = att.parts
            assert link.info().type_enum == LinkType.UPROBE_MULTI
            assert {t.symbol for t in att.target} == {"multi_a", "multi_b", "multi_c", "multi_d"}
            leaks.snapshot()
            run_umt(umt)
        finally:
            for a in atts:
                a.close()
        assert counts[0] == 6 * N
        atts = attach(plain, f"uprobe:{umt}:multi_*")
        try:
            assert len(atts) == 4 and all(not p.is_bpf_link or p.kind == "perf_link" for a in atts for p in a.parts)
            leaks.snapshot()
            run_umt(umt)
        finally:
            for a in atts:
                a.close()
        assert counts[0] == 12 * N
        # one target with a multi program: still a uprobe_multi link
        [one] = attach(multi, f"uprobe:{umt}:multi_b")
        with one:
            run_umt(umt)
        assert counts[0] == 14 * N


@pytest.mark.uprobes
@pytest.mark.uprobe_multi
def test_program_type_mismatch_is_named(umt, leaks):
    with new_counts() as counts, multi_counter(counts, multi=False) as plain, multi_counter(counts) as multi:
        leaks.snapshot()
        with pytest.raises(BPFError) as err:
            attach_uprobe_multi(plain, umt, "multi_*")
        assert err.value.errno == errno.EINVAL and f"uprobe.multi:{umt}" in str(err.value)
        with pytest.raises(ValueError, match="one value per entry"):
            attach_uprobe_multi(multi, umt, ["multi_a", "multi_b"], cookies=[1])
        with pytest.raises(ProbeNotFoundError, match="no_such"):
            attach_uprobe_multi(multi, umt, "no_such_*")
        with attach(multi, f"uprobe:{umt}:multi_a")[0]:
            leaks.snapshot()


@pytest.mark.uprobes
@pytest.mark.uprobe_multi
def test_pybpftrace_wildcard_is_one_program_and_one_link(umt, leaks):
    from ebpfpy.bpftrace import Script

    script = Script(f"uprobe:{umt}:multi_* {{ @ = count(); }} uretprobe:{umt}:multi_[ab] {{ @r = count(); }}")
    plans = script.compiled.probes
    assert [len(p.targets) for p in plans] == [4, 2]
    assert all(p.expected_attach_type == AttachType.TRACE_UPROBE_MULTI for p in plans)
    with script.run() as run:
        ids = leaks.snapshot()
        assert len(ids["prog"] - leaks.before["prog"]) == 2
        links = [bpf.link_info(bpf.link_get_fd_by_id(i)) for i in ids["link"] - leaks.before["link"]]
        assert sorted(li.type_enum for li in links) == [LinkType.UPROBE_MULTI] * 2
        run_umt(umt)
        assert run.maps["@"] == 6 * N
        assert run.maps["@r"] == 3 * N
    # `probe` is per target: one program each, and the counts per function
    with Script(f"uprobe:{umt}:multi_* {{ @[probe] = count(); }}").run() as run:
        leaks.snapshot()
        run_umt(umt)
        assert run.maps["@"] == {f"uprobe:{umt}:multi_a": N, f"uprobe:{umt}:multi_b": 2 * N,
                                 f"uprobe:{umt}:multi_c": 3 * N}


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


@pytest.mark.slow
@pytest.mark.uprobes
@pytest.mark.uprobe_multi
def test_bash_wildcard_attach_and_detach_times(leaks):
    """``uprobe:/bin/bash:s*`` (hundreds of functions): one perf event per function against one
    uprobe_multi link. Closing a perf-event uprobe waits for the kernel's uprobe grace period,
    one close after the other; the link waits once."""
    bash = os.path.realpath("/bin/bash")
    with new_counts() as counts, multi_counter(counts, multi=False) as plain, multi_counter(counts) as multi:
        times = {}
        for name, prog in (("perf events", plain), ("uprobe_multi", multi)):
            atts, attach_s = _timed(lambda prog=prog: attach(prog, f"uprobe:{bash}:s*"))
            try:
                leaks.snapshot()
                before = counts[0]
                subprocess.run([bash, "-c", "x=1; echo $x >/dev/null"], check=True)
                fired = counts[0] - before
            finally:
                _, detach_s = _timed(lambda atts=atts: [a.close() for a in atts])
            targets = sum(len(a.target) if isinstance(a.target, tuple) else 1 for a in atts)
            times[name] = (targets, len(atts), attach_s, detach_s, fired)
        print()
        for name, (targets, n_atts, attach_s, detach_s, fired) in times.items():
            print(f"uprobe:{bash}:s* via {name}: {targets} functions, {n_atts} attachment(s), "
                  f"attach {attach_s:.3f} s, detach {detach_s:.3f} s, {fired} hits for one bash -c")
        assert times["perf events"][0] == times["uprobe_multi"][0] > 50
        assert times["uprobe_multi"][1] == 1
        # (both fire; the counts need not be equal: the probes are system-wide, and any other bash
        # running meanwhile adds hits)
        assert times["perf events"][4] > 0 and times["uprobe_multi"][4] > 0
        assert times["uprobe_multi"][3] < times["perf events"][3]


# ---------------------------------------------------------------------------
# XDP

def xdp_counter(counts) -> Program:
    """counts[0] += 1 for every packet; XDP_PASS."""
    b = Builder()
    b.st(4, FP, 0, -4)
    b.ld_map_fd(R1, counts)
    b.mov(R2, FP)
    b.add(R2, -4)
    b.call("map_lookup_elem")
    b.jeq(R0, 0, "out")
    b.mov(R1, 1)
    b.atomic("add", 8, R0, R1, 0)
    b.label("out")
    b.mov(R0, 2)  # XDP_PASS
    b.exit()
    return Program.load("xdp", b.build(), name="links_test", expected_attach_type="xdp")


@pytest.mark.net
def test_xdp_link_on_lo_counts_packets(netns, leaks):
    """In a namespace of our own, lo carries exactly our datagrams: one XDP run each (generic mode)."""
    with new_counts() as counts, xdp_counter(counts) as prog:
        def body():
            with prog.attach_xdp("lo", flags="skb") as link:
                assert link.info().type_enum == LinkType.XDP
                leaks.snapshot()
                with pytest.raises(BPFError) as busy:  # one XDP link per interface and mode
                    attach_xdp(prog, 1, flags=XdpFlag.SKB_MODE)
                assert busy.value.errno == errno.EBUSY and "xdp:1" in str(busy.value)
                udp_roundtrip(N)
            udp_roundtrip(3)  # detached

        netns.run(body)
        assert counts[0] == N


@pytest.mark.clang
@pytest.mark.net
def test_xdp_object_program_filters_its_port(links_obj, netns, leaks):
    with load_links(links_obj, only=("count_xdp",)) as obj:
        prog = obj.programs["count_xdp"]

        def body():
            [att] = prog.attach(iface="lo")  # by section name: xdp on the interface given
            with att:
                leaks.snapshot()
                udp_roundtrip(N)
                udp_roundtrip(5, port=PORT + 1)  # not ours
        netns.run(body)
        assert counts_of(obj)[XDP_IN] == N


def udp_frame(dport: int, payload: bytes = b"hello") -> bytes:
    eth = b"\x02" * 6 + b"\x04" * 6 + struct.pack("!H", 0x0800)
    udp_len = 8 + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 1, 0, 64, 17, 0,
                     socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2"))
    return eth + ip + struct.pack("!HHHH", 40000, dport, udp_len, 0) + payload


@pytest.mark.clang
def test_xdp_test_run(links_obj, leaks):
    """BPF_PROG_TEST_RUN: the program runs on a frame we build, no interface involved."""
    with load_links(links_obj, only=("count_xdp",)) as obj:
        prog = obj.programs["count_xdp"].program
        leaks.snapshot()
        result = prog.test_run(udp_frame(PORT))
        assert result.retval == 2 and result.data_out == udp_frame(PORT)  # XDP_PASS, unchanged
        prog.test_run(udp_frame(PORT), repeat=5)
        prog.test_run(udp_frame(PORT + 1), repeat=3)
        prog.test_run(udp_frame(PORT)[:30])  # truncated: not parsed as ours
        assert counts_of(obj)[XDP_IN] == 6


# ---------------------------------------------------------------------------
# tcx

@pytest.mark.clang
@pytest.mark.net
@pytest.mark.tcx
def test_tcx_ingress_and_egress_on_lo(links_obj, netns, leaks):
    with load_links(links_obj, only=("count_tcx_in", "count_tcx_out")) as obj:
        tin, tout = obj.programs["count_tcx_in"], obj.programs["count_tcx_out"]

        def body():
            with tin.program.attach_tcx("lo", "ingress") as lin:
                [att] = tout.attach(iface="lo")  # the section says egress
                with att:
                    assert lin.info().type_enum == LinkType.TCX
                    assert att.parts[0].info().type_enum == LinkType.TCX
                    leaks.snapshot()
                    with pytest.raises(BPFError) as stale:
                        tin.program.attach_tcx("lo", "egress", expected_revision=12345)
                    assert stale.value.errno == errno.ESTALE
                    udp_roundtrip(N)
                    udp_roundtrip(4, port=PORT + 1)
                udp_roundtrip(2)  # egress detached: ingress only
            udp_roundtrip(3)  # both detached

        netns.run(body)
        c = counts_of(obj)
        assert (c[TCX_IN], c[TCX_OUT]) == (N + 2, N)
        with pytest.raises(ValueError, match="direction"):
            tin.program.attach_tcx("lo", "sideways")


# ---------------------------------------------------------------------------
# cgroups

def sock_counter(counts) -> Program:
    """counts[0] += 1 for each AF_INET datagram socket created; allow it."""
    b = Builder()
    b.mov(R6, R1)
    b.ldx(4, R2, R6, 4)  # bpf_sock->family
    b.jne(R2, 2, "out")
    b.ldx(4, R2, R6, 8)  # bpf_sock->type
    b.jne(R2, 2, "out")
    b.st(4, FP, 0, -4)
    b.ld_map_fd(R1, counts)
    b.mov(R2, FP)
    b.add(R2, -4)
    b.call("map_lookup_elem")
    b.jeq(R0, 0, "out")
    b.mov(R1, 1)
    b.atomic("add", 8, R0, R1, 0)
    b.label("out")
    b.mov(R0, 1)
    b.exit()
    return Program.load("cgroup_sock", b.build(), name="links_test",
                        expected_attach_type="cgroup_inet_sock_create")


CHILD_TRIGGER = """
import os, socket
port, n, k = {port}, {n}, {k}
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"x", ("127.0.0.1", port))
    s.close()
for i in range(k):
    fd = os.open("/proc/sys/kernel/ostype", os.O_RDONLY)
    os.read(fd, 64)  # one read: the sysctl handler runs once
    os.close(fd)
for i in range(k):
    os.close(os.open("/dev/null", os.O_RDONLY))
"""


@pytest.mark.cgroup
def test_cgroup_sock_create_counts_sockets_of_the_cgroup(cgroup, leaks):
    with new_counts() as counts, sock_counter(counts) as prog:
        with prog.attach_cgroup(cgroup.path) as link:  # the load-time attach type
            info = link.info()
            assert info.type_enum == LinkType.CGROUP
            leaks.snapshot()
            cgroup.python(CHILD_TRIGGER.format(port=9, n=7, k=0))
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()  # this process is not in it
            assert counts[0] == 7
        cgroup.python(CHILD_TRIGGER.format(port=9, n=3, k=0))
        assert counts[0] == 7


@pytest.mark.clang
@pytest.mark.cgroup
def test_cgroup_skb_sysctl_dev_from_a_child_cgroup(links_obj, cgroup, leaks):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(10)
        port = rx.getsockname()[1]
        names = ("count_egress", "count_sock", "count_sysctl", "count_dev")
        with load_links(links_obj, port=port, only=names) as obj:
            progs = {name: obj.programs[name] for name in names}
            with contextlib.ExitStack() as stack:
                stack.enter_context(progs["count_egress"].program.attach_cgroup(cgroup.path, "egress"))
                stack.enter_context(progs["count_sock"].program.attach_cgroup(
                    os.path.relpath(cgroup.path, find_cgroup2()), AttachType.CGROUP_INET_SOCK_CREATE))
                for name in ("count_sysctl", "count_dev"):  # by section name
                    for att in progs[name].attach(cgroup=cgroup.path):
                        stack.enter_context(att)
                leaks.snapshot()
                cgroup.python(CHILD_TRIGGER.format(port=port, n=N, k=5))
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:  # outside the cgroup
                    tx.sendto(b"y", ("127.0.0.1", port))
                for _ in range(N + 1):
                    rx.recv(64)
                c = counts_of(obj)
                assert (c[CG_EGRESS], c[CG_SOCK], c[CG_SYSCTL], c[CG_DEV]) == (N, N, 5, 5)
            cgroup.python(CHILD_TRIGGER.format(port=port, n=2, k=2))  # detached
            for _ in range(2):
                rx.recv(64)
            c = counts_of(obj)
            assert (c[CG_EGRESS], c[CG_SOCK], c[CG_SYSCTL], c[CG_DEV]) == (N, N, 5, 5)


def test_cgroup_short_names_match_the_section_table():
    from ebpfpy.elf.sections import SEC_DEFS

    for d in SEC_DEFS:
        if d.link_target == "cgroup" and d.prefix.startswith(("cgroup/", "cgroup_skb/")):
            assert CGROUP_ATTACH_TYPES[d.prefix.split("/", 1)[1]] == d.attach_type, d.prefix


# ---------------------------------------------------------------------------
# the object as a whole: attach_all and `ebpfpy run`

@pytest.mark.clang
@pytest.mark.net
@pytest.mark.cgroup
@pytest.mark.tcx
@pytest.mark.uprobes
@pytest.mark.uprobe_multi
def test_ebpfpy_run_attaches_every_section(links_obj, umt, netns, cgroup, leaks):
    """``ebpfpy run OBJ --ifname lo --cgroup DIR`` in the namespace: xdp and tcx on its lo,
    the cgroup programs on DIR, the uprobe.multi sections on their binary; traffic, a sysctl
    read, /dev/null and the target program, then Ctrl-C prints the counts."""
    cmd = netns.exec(sys.executable, "-c", "from ebpfpy.cli import main; main()", "run", links_obj,
                     "--set", f"port={PORT}", "--ifname", "lo", "--cgroup", cgroup.path)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    watchdog = threading.Timer(120, proc.kill)
    watchdog.daemon = True
    watchdog.start()
    try:
        line = proc.stderr.readline()
        assert line.startswith("Attached 9 probe(s)"), line + proc.stderr.read()
        held = held_ids()
        run_ids = ids_of_programs(set(PROGRAMS))  # the run is another process: its objects by name
        assert len(run_ids["prog"]) == 9 and len(run_ids["link"]) == 9
        cgroup.python(CHILD_TRIGGER.format(port=PORT, n=0, k=3)
                      + f"\nimport socket\nr = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                      f"r.bind(('127.0.0.1', {PORT}))\nfor i in range({N}):\n"
                      f"    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', {PORT}))\n"
                      f"    r.recv(64)\n", netns=netns)
        run_umt(umt)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    values = {}
    for text in out.splitlines():
        if text.startswith("@counts["):
            key, _, value = text[len("@counts["):].partition("]: ")
            values[int(key)] = int(value)
    expected = {XDP_IN: N, TCX_IN: N, TCX_OUT: N, CG_EGRESS: N, CG_SOCK: N + 1, CG_SYSCTL: 3, CG_DEV: 3,
                UPROBES: 6 * N, URETPROBES: 3 * N, URET_SUM: N * (N + 1) // 2 + 2 * 2 * N}
    assert values == expected, out
    by_ip = [line for line in out.splitlines() if line.startswith("@by_ip[")]
    assert len(by_ip) == 3  # multi_a, multi_b, multi_c (multi_d is never called)
    assert held == held_ids()  # nothing of the run is ours
    for kind in ("prog", "link"):  # its own exit released everything
        leaks.seen[kind] |= run_ids[kind]


# ---------------------------------------------------------------------------
# the attribute layout and the feature probes

@pytest.mark.clang
@pytest.mark.btf
def test_link_create_fields_match_the_kernel_btf(tmp_path):
    """The new link_create fields against union bpf_attr in this kernel's BTF (the installed
    uapi header is older than tcx and uprobe_multi): static asserts compiled for BPF."""
    if not shutil.which("bpftool"):
        pytest.skip("needs bpftool to write vmlinux.h")
    with open(tmp_path / "vmlinux.h", "w") as f:
        subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"],
                       check=True, stdout=f)
    names = {"target_ifindex": "target_ifindex", "relative_fd": "tcx.relative_fd",
             "expected_revision": "tcx.expected_revision"}
    names.update({f"uprobe_multi_{f}": f"uprobe_multi.{f}"
                  for f in ("path", "offsets", "ref_ctr_offsets", "cookies", "cnt", "flags", "pid")})
    lines = ['#include "vmlinux.h"']
    for field, cexpr in names.items():
        off = bpf.LINK_CREATE.fields[field][0]
        lines.append(f'_Static_assert(__builtin_offsetof(union bpf_attr, link_create.{cexpr}) == {off}, "{field}");')
    (tmp_path / "layout.c").write_text("\n".join(lines) + "\n")
    proc = subprocess.run(["clang-19", "-target", "bpf", "-fsyntax-only", "-I", str(tmp_path),
                           str(tmp_path / "layout.c")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_feature_probes_answer():
    for name in ("uprobe_multi", "tcx"):
        ok = features.has(name)
        assert isinstance(ok, bool) and (ok or features.reason(name))
