"""The network-namespace link types attached for real, each with traffic and a value read back:
netfilter hook functions (BPF_NETFILTER: a family, a hook and a priority in the caller's
namespace) and sk_lookup programs (BPF_SK_LOOKUP on a network namespace fd), from programs
built with ebpfpy's builder and from ``tests/bpf_objects/net_links.bpf.c`` (libbpf's section
names ``netfilter`` and ``sk_lookup``), and the attribute layouts against the kernel's BTF.

Each test runs its traffic in a network namespace of its own (test_links.py's ``netns``
fixture): a netfilter link made by a thread that entered it hooks that namespace only, and its
``lo`` carries only the test's packets. After every test the links and programs are gone
(test_links.py's ``leaks``: the kernel no longer has them, ``bpftool link list`` no longer lists
them) and so is the namespace.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading

import pytest
from helpers import bpf_object, write_vmlinux_h
from test_attach_common import new_counts
from test_links import PORT, ROOT, N, ids_of_programs, udp_roundtrip, wait_until
from test_links import leaks as leaks  # fixtures: nothing left behind,
from test_links import netns as netns  # a network namespace of the test's own

from ebpfpy import features
from ebpfpy.elf import ObjectError
from ebpfpy.isa.builder import FP, R0, R1, R2, R6, Builder
from ebpfpy.progs import Program
from ebpfpy.sys import bpf
from ebpfpy.sys.consts import NF_ACCEPT, SK_PASS, AttachType, LinkType, NfHook, NfProto, ProgType
from ebpfpy.sys.errors import BPFError

pytestmark = [pytest.mark.kernel]

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "bpf_objects")

# slots of net_links.bpf.c's `counts` (0..4: datagrams to `port` per NF_INET_* hook)
NF_BYTES, NF_DROPPED, SKL_TCP, SKL_UDP, SKL_STEERED = range(5, 10)
DATAGRAM = 20 + 8 + 16  # what udp_roundtrip sends, as skb->len sees it at LOCAL_IN and LOCAL_OUT
SK_LOOKUP_LOCAL_PORT = 60  # offsetof(struct bpf_sk_lookup, local_port), checked against BTF below


def count_then(counts, verdict: int, *, guard=None) -> list:
    """counts[0] += 1 (when ``guard(b)`` falls through; it jumps to "out" to skip), then return
    ``verdict``."""
    b = Builder()
    b.mov(R6, R1)
    if guard is not None:
        guard(b)
    b.st(4, FP, 0, -4)
    b.ld_map_fd(R1, counts)
    b.mov(R2, FP)
    b.add(R2, -4)
    b.call("map_lookup_elem")
    b.jeq(R0, 0, "out")
    b.mov(R1, 1)
    b.atomic("add", 8, R0, R1, 0)
    b.label("out")
    b.mov(R0, verdict)
    b.exit()
    return b.build()


def host_udp(n: int) -> None:
    """``n`` datagrams over the host namespace's lo (an ephemeral port: nothing of anyone else's)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(10)
        for _ in range(n):
            tx.sendto(b"h", rx.getsockname())
            rx.recv(64)


@pytest.fixture(scope="module")
def net_obj(tmp_path_factory):
    return bpf_object("net_links", tmp_path_factory.mktemp("net_links"))


def load_net(path: str, **values):
    from ebpfpy.elf import load_object

    obj = load_object(path)
    for name, value in {"port": PORT, **values}.items():
        obj.globals[name] = value
    if "nf_count" in obj.programs:  # a 5.9-6.3 kernel runs the sk_lookup tests without it
        obj.programs["nf_count"].autoload = features.has("netfilter_link")
    return obj.load()


def counts_of(obj) -> list[int]:
    m = obj.maps["counts"]
    return [m[i] for i in range(10)]


# ---------------------------------------------------------------------------
# netfilter

@pytest.mark.net
@pytest.mark.netfilter_link
def test_netfilter_link_counts_the_namespaces_packets(netns, leaks):
    """A hook function at IPv4 LOCAL_IN of the namespace its thread is in: one run per datagram
    delivered there, none for the host's, none once closed."""
    with new_counts() as counts, \
            Program.load("netfilter", count_then(counts, NF_ACCEPT), name="nf_links_test",
                         expected_attach_type="netfilter") as prog:
        # made by a thread in the namespace, the link hooks that namespace, whoever closes it
        with netns.run(lambda: prog.attach_netfilter("ipv4", "input", priority=-128)) as link:
            info = link.info()
            assert info.type_enum == LinkType.NETFILTER and info.prog_id == prog.info().id
            assert info.details == {"pf": NfProto.IPV4, "hooknum": NfHook.LOCAL_IN, "priority": -128, "flags": 0}
            assert link.description == "netfilter:ipv4:local_in:-128"
            leaks.snapshot()
            netns.run(udp_roundtrip, N)
            host_udp(5)  # the host's namespace: not hooked
            assert counts[0] == N
        netns.run(udp_roundtrip, 3)  # detached
        assert counts[0] == N


@pytest.mark.net
@pytest.mark.netfilter_link
def test_netfilter_refusals_are_explained(netns, leaks):
    """The kernel's netfilter checks answer with bare errnos; the error says which rule it was.
    IPv6, LOCAL_OUT and defragmentation attach (and show in the link's info)."""
    with new_counts() as counts, \
            Program.load("netfilter", count_then(counts, NF_ACCEPT), name="nf_links_test",
                         expected_attach_type="netfilter") as prog:
        def body():
            for kwargs, code, why in (
                    ({"pf": "ipv4", "hook": "input", "priority": -2**31}, errno.ERANGE, "INT_MIN"),
                    ({"pf": "ipv4", "hook": "input", "priority": -400, "defrag": True}, errno.ERANGE, "-400"),
                    ({"pf": NfProto.ARP, "hook": 0}, errno.EAFNOSUPPORT, "ipv4 and ipv6"),
                    ({"pf": "ipv6", "hook": 7}, errno.EPROTO, "prerouting"),
                    ({"pf": "ipv4", "hook": "input", "flags": 0x80}, errno.EOPNOTSUPP, "flags")):
                with pytest.raises(BPFError) as refused:
                    prog.attach_netfilter(**kwargs)
                assert refused.value.errno == code and why in str(refused.value), kwargs
            with prog.attach_netfilter(NfProto.IPV6, NfHook.LOCAL_OUT, priority=-399, defrag=True) as link:
                leaks.snapshot()
                assert link.info().details == {"pf": 10, "hooknum": 3, "priority": -399, "flags": 1}
            with pytest.raises(ValueError, match="unknown netfilter family"):
                prog.attach_netfilter("ipx", "input")

        netns.run(body)


@pytest.mark.clang
@pytest.mark.net
@pytest.mark.netfilter_link
def test_netfilter_object_counts_per_hook_and_drops(net_obj, netns, leaks):
    """net_links.bpf.c's ``netfilter`` program on two hooks: the count per hook (read from
    bpf_nf_ctx's state), skb->len, and NF_DROP on the way out, which sendto() reports as EPERM."""
    with load_net(net_obj, drop_port=PORT + 1) as obj:
        prog = obj.programs["nf_count"]
        assert (prog.kind.prog_type, prog.expected_attach_type) == (ProgType.NETFILTER, AttachType.NETFILTER)
        assert prog.link_target is None and not prog.attachable  # the section names no hook
        with pytest.raises(ObjectError, match=r"section name; attach_netfilter\(pf, hook"):
            prog.attach()

        def send_dropped(k: int) -> int:
            refused = 0
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
                for _ in range(k):
                    try:
                        tx.sendto(b"x", ("127.0.0.1", PORT + 1))
                    except PermissionError:
                        refused += 1
            return refused

        def body():
            prog.attach_netfilter("ipv4", "input", priority=100)
            out = prog.attach_netfilter("ipv4", NfHook.LOCAL_OUT, priority=-100)
            leaks.snapshot()
            udp_roundtrip(N)
            refused = send_dropped(4)
            out.close()  # off LOCAL_OUT: sendto() succeeds, and LOCAL_IN drops the datagrams on arrival
            return refused, send_dropped(2)

        refused, later = netns.run(body)
        assert (refused, later) == (4, 0)
        # the last two reach LOCAL_IN in lo's softirq, which need not have run when sendto() returns
        wait_until(lambda: counts_of(obj)[NF_DROPPED] == 4 + 2, what="the dropped datagrams to be counted")
        c = counts_of(obj)
        assert c[:5] == [0, N, 0, N, 0] and c[NF_BYTES] == 2 * N * DATAGRAM
    # closing the object closed the links attach_netfilter made (leaks checks they are gone)


# ---------------------------------------------------------------------------
# sk_lookup

def local_port_is(port: int):
    def guard(b):
        b.ldx(4, R2, R6, SK_LOOKUP_LOCAL_PORT)  # host order
        b.jne(R2, port, "out")
    return guard


@pytest.mark.net
def test_sk_lookup_links_by_name_path_fd_and_own_thread(netns, leaks):
    """One sk_lookup program on the namespace four times (an ``ip netns`` name, its path, an open
    fd, and None from a thread inside it): each link runs once per socket lookup, here one per
    datagram delivered to an unconnected UDP socket."""
    path = f"/run/netns/{netns.name}"
    with new_counts() as counts, \
            Program.load("sk_lookup", count_then(counts, SK_PASS, guard=local_port_is(PORT)),
                         name="skl_links_test", expected_attach_type="sk_lookup") as prog:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            links = [prog.attach_sk_lookup(netns.name), prog.attach_netns(path), prog.attach_netns(fd)]
        finally:
            os.close(fd)  # the links hold the namespace
        try:
            links.append(netns.run(prog.attach_netns))
            for link in links:
                info = link.info()
                assert info.type_enum == LinkType.NETNS and info.prog_id == prog.info().id
                assert info.details == {"netns_ino": os.stat(path).st_ino, "attach_type": AttachType.SK_LOOKUP}
            assert links[0].description == f"sk_lookup:netns {path}"
            leaks.snapshot()
            netns.run(udp_roundtrip, N)
            assert counts[0] == 4 * N
            for link in links[1:]:
                link.close()
            netns.run(udp_roundtrip, 2)
            assert counts[0] == 4 * N + 2
        finally:
            for link in links:
                link.close()
        netns.run(udp_roundtrip, 3)
        assert counts[0] == 4 * N + 2


@pytest.mark.net
def test_flow_dissector_goes_on_a_namespace_too(netns, leaks):
    """``attach_netns`` takes the attach type the program was loaded with: a flow dissector
    (one per namespace: the kernel refuses a second with E2BIG). Only the link is checked:
    what makes the kernel dissect a flow here is not something a test controls."""
    b = Builder()
    b.mov(R0, 0)  # BPF_OK
    b.exit()
    with Program.load("flow_dissector", b.build(), name="fd_links_test",
                      expected_attach_type="flow_dissector") as prog:
        with prog.attach_netns(netns.name) as link:
            leaks.snapshot()
            assert link.info().details["attach_type"] == AttachType.FLOW_DISSECTOR
            with pytest.raises(BPFError) as taken:
                prog.attach_netns(netns.name)
            assert taken.value.errno == errno.E2BIG and "flow_dissector:netns" in str(taken.value)


@pytest.mark.clang
@pytest.mark.net
def test_sk_lookup_object_steers_tcp_to_a_socket_in_a_sockmap(net_obj, netns, leaks):
    """The ``sk_lookup`` program, attached by section name: TCP connections to a port nobody
    listens on land on a listener bound elsewhere, found in a SOCKMAP; accept() shows the
    address the client asked for. Detached, the port refuses again."""
    steer = PORT + 7
    with load_net(net_obj, port=steer, steer_port=steer) as obj:
        prog = obj.programs["steer"]
        assert (prog.link_target, prog.expected_attach_type) == ("netns", AttachType.SK_LOOKUP)

        def connect(listener, k: int) -> list:
            """``k`` connections to the steered port: the local address of each accepted one."""
            seen = []
            for i in range(k):
                try:
                    with socket.create_connection(("127.0.0.1", steer), timeout=10) as c:
                        conn, _ = listener.accept()
                        with conn:
                            c.sendall(bytes([i]))
                            assert conn.recv(1) == bytes([i])
                            seen.append(conn.getsockname())
                except ConnectionRefusedError:
                    seen.append("refused")
            return seen

        def body():
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
                listener.bind(("127.0.0.1", PORT + 5))
                listener.listen(8)
                listener.settimeout(10)
                obj.maps["target"][0] = listener.fileno()  # closing the socket takes it out again
                before = connect(listener, 1)
                [att] = prog.attach(netns="/proc/thread-self/ns/net")  # by section: this thread's namespace
                with att:
                    leaks.snapshot()
                    steered = connect(listener, N)
                return before, steered, connect(listener, 1)

        with pytest.raises(ObjectError, match="needs a network namespace"):
            prog.attach()
        before, steered, after = netns.run(body)
        assert before == ["refused"] and after == ["refused"]
        assert steered == [("127.0.0.1", steer)] * N
        c = counts_of(obj)
        assert (c[SKL_TCP], c[SKL_STEERED], c[SKL_UDP]) == (N, N, 0)  # one lookup per SYN, while attached


@pytest.mark.clang
@pytest.mark.net
@pytest.mark.netfilter_link
def test_ebpfpy_run_netns_attaches_sk_lookup(net_obj, netns, leaks):
    """``ebpfpy run OBJ --netns NAME``: the sk_lookup program on that namespace (the netfilter one
    is listed as not attached: its hook is the caller's to choose); datagrams sent there are
    counted, and Ctrl-C prints the counts."""
    cmd = [sys.executable, "-c", "from ebpfpy.cli import main; main()", "run", net_obj,
           "--set", f"port={PORT}", "--netns", netns.name]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    watchdog = threading.Timer(120, proc.kill)
    watchdog.daemon = True
    watchdog.start()
    try:
        line = proc.stderr.readline()
        assert line.startswith("Attached 1 probe(s)") and "not attached" in line and "nf_count" in line, \
            line + proc.stderr.read()
        run_ids = ids_of_programs({"steer", "nf_count"})
        assert len(run_ids["prog"]) == 2 and len(run_ids["link"]) == 1
        netns.run(udp_roundtrip, N)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert f"@counts[{SKL_UDP}]: {N}" in out.splitlines(), out
    for kind in ("prog", "link"):
        leaks.seen[kind] |= run_ids[kind]


# ---------------------------------------------------------------------------
# libbpf and the kernel's own layouts

@pytest.mark.clang
def test_sk_lookup_xlated_matches_bpftool_loadall(tmp_path, leaks):
    """The same object loaded by libbpf (``bpftool prog loadall``) and by us: identical programs.
    bpftool 7.1's libbpf (1.1) predates the ``netfilter`` section, so its build leaves that
    program out (-DNO_NETFILTER); the netfilter program is held to the kernel instead."""
    from ebpfpy.bpffs import temp_dir
    from ebpfpy.elf import load_object

    if not shutil.which("bpftool"):
        pytest.skip("bpftool (the libbpf reference) is not installed")
    write_vmlinux_h(tmp_path)
    path = str(tmp_path / "net_links_libbpf.o")
    subprocess.run(["clang-19", "-O2", "-g", "-target", "bpf", "-DNO_NETFILTER", "-I", str(tmp_path), "-I", SRC,
                    "-c", os.path.join(SRC, "net_links.bpf.c"), "-o", path], check=True)
    with temp_dir("ebpfpy-netlinks-") as pins:
        subprocess.run(["bpftool", "prog", "loadall", path, pins], check=True, capture_output=True)
        with load_object(path) as obj:
            obj.load()
            assert sorted(os.listdir(pins)) == sorted(obj.programs) == ["steer"]
            with bpf.obj_get(os.path.join(pins, "steer")) as fd:
                theirs = bpf.prog_info(fd)
            mine = obj.programs["steer"].program.info()
            leaks.snapshot()
            leaks.seen["prog"].add(theirs.id)
            assert (mine.type, mine.name) == (theirs.type, theirs.name) == (ProgType.SK_LOOKUP, "steer")
            assert norm_xlated(mine.xlated) == norm_xlated(theirs.xlated)
            shown = json.loads(subprocess.run(["bpftool", "-j", "prog", "show", "id", str(theirs.id)],
                                              capture_output=True, text=True, check=True).stdout)
            assert shown["type"] == "sk_lookup"


def norm_xlated(x: bytes) -> bytes:
    """Map ids -> order of first use, so two loads of the same object compare equal."""
    import struct

    out, ids, i = bytearray(x), {}, 0
    while i < len(out) // 8:
        if out[i * 8] == 0x18:
            if out[i * 8 + 1] >> 4 in (1, 2, 5, 6):
                (mid,) = struct.unpack_from("<I", out, i * 8 + 4)
                struct.pack_into("<I", out, i * 8 + 4, ids.setdefault(mid, len(ids)))
            i += 2
        else:
            i += 1
    return bytes(out)


@pytest.mark.clang
@pytest.mark.btf
def test_layouts_match_the_kernel_btf(tmp_path):
    """link_create.netfilter, bpf_link_info's netns and netfilter members and the bpf_sk_lookup
    field the builder program reads, against this kernel's BTF (the installed 6.1 uapi header
    predates netfilter links): static asserts compiled for BPF."""
    from ebpfpy.sys.layouts import LINK_CREATE, LINK_INFO_NETFILTER, LINK_INFO_NETNS

    write_vmlinux_h(tmp_path)
    checks = [(f"union bpf_attr, link_create.netfilter.{f}", LINK_CREATE.fields[f"netfilter_{f}"][0])
              for f in ("pf", "hooknum", "priority", "flags")]
    checks += [(f"struct bpf_link_info, netfilter.{f}", off) for f, (off, _) in LINK_INFO_NETFILTER.fields.items()]
    checks += [(f"struct bpf_link_info, netns.{f}", off) for f, (off, _) in LINK_INFO_NETNS.fields.items()]
    checks += [("struct bpf_sk_lookup, local_port", SK_LOOKUP_LOCAL_PORT)]
    lines = ['#include "vmlinux.h"']
    lines += [f'_Static_assert(__builtin_offsetof({expr}) == {off}, "{expr}");' for expr, off in checks]
    lines.append('_Static_assert(sizeof(((union bpf_attr *)0)->link_create.netfilter.priority) == 4, "prio");')
    (tmp_path / "layout.c").write_text("\n".join(lines) + "\n")
    proc = subprocess.run(["clang-19", "-target", "bpf", "-fsyntax-only", "-I", str(tmp_path),
                           str(tmp_path / "layout.c")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_feature_probe_answers():
    ok = features.has("netfilter_link")
    assert isinstance(ok, bool) and (ok or features.reason("netfilter_link"))
