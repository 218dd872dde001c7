"""netkit links (BPF_NETKIT_PRIMARY, BPF_NETKIT_PEER; 6.7+, CONFIG_NETKIT) attached for real:
a netkit pair with its primary in one network namespace and its peer in another (as a
container's would be), UDP round trips between them, and what the programs counted read back
from a map. Programs built with ebpfpy's builder and ``tests/bpf_objects/netkit.bpf.c``
(libbpf's section names ``netkit/primary`` and ``netkit/peer``).

Both programs attach on the primary's ifindex, from a thread inside the primary's namespace: the
primary side's run on what the primary transmits, the peer side's on what the peer transmits.
This machine's kernel has no netkit (the ``netkit`` marker skips with the probe's reason); the
6.12 guest has it: ``tests/vm/run --kernel 6.12 -- tests/kernel/test_netkit_links.py``.

The namespaces are held by ``unshare -n sleep`` children and entered with ``nsenter``, since the
guest's busybox ``ip`` has no ``netns`` subcommand; busybox cannot name the peer either, so the
test finds it as the new device beside the primary. After every test the links, programs and
maps are gone (test_links.py's ``leaks``), the devices and the namespaces too.
"""
from __future__ import annotations

import ctypes
import errno
import os
import socket
import subprocess
import threading

import pytest
from helpers import bpf_object
from test_attach_common import new_counts
from test_links import N, wait_until
from test_links import leaks as leaks  # fixture: nothing left behind

from ebpfpy import features
from ebpfpy.isa.builder import FP, R0, R1, R2, R3, R4, R5, R6, Builder
from ebpfpy.links import attach_netkit
from ebpfpy.progs import Program
from ebpfpy.sys.consts import NETKIT_DROP, NETKIT_NEXT, AttachType, LinkType
from ebpfpy.sys.errors import BPFError

pytestmark = [pytest.mark.kernel]

PORT = 4343
PRIMARY_ADDR, PEER_ADDR = "10.201.0.1", "10.201.0.2"
SKB_DATA, SKB_DATA_END = 76, 80  # offsetof(struct __sk_buff, data / data_end)
# netkit devices are Ethernet devices (ether_setup; L3 mode only adds IFF_NOARP): a packet starts with
# a 14-byte Ethernet header in either mode. Offsets from the start, for an IPv4 header without options.
ETH_PROTO, IP_PROTO, UDP_SPORT, UDP_DPORT = 12, 14 + 9, 14 + 20, 14 + 22
_libc = ctypes.CDLL("libc.so.6", use_errno=True)
CLONE_NEWNET = 0x40000000


class Namespace:
    """A network namespace of its own, held by an ``unshare -n sleep`` child (busybox has no
    ``ip netns``): ``run`` enters it in a thread, ``ip`` runs ``ip`` there through ``nsenter``."""

    def __init__(self):
        self.proc = subprocess.Popen(["unshare", "-n", "sleep", "600"])
        self.path = f"/proc/{self.proc.pid}/ns/net"
        mine = os.readlink("/proc/self/ns/net")
        wait_until(lambda: self._ns() not in (None, mine), what="unshare -n to make its namespace")

    def _ns(self):
        try:
            return os.readlink(self.path)
        except OSError:
            return None

    def run(self, fn, *args):
        """``fn(*args)`` in a thread inside the namespace (sockets, ifindexes and links it makes
        are the namespace's); its exception is re-raised here."""
        out: dict = {}

        def body():
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
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

    def ip(self, *argv: str) -> str:
        proc = subprocess.run(["nsenter", "-t", str(self.proc.pid), "-n", "ip", *argv],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, f"ip {' '.join(argv)}: {proc.stderr.strip()}"
        return proc.stdout

    def devices(self) -> dict:
        return {name: index for index, name in self.run(socket.if_nameindex)}

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


class Pair:
    def __init__(self, a: Namespace, b: Namespace, primary: str, peer: str):
        self.a, self.b = a, b
        self.primary, self.peer = primary, peer
        self.primary_index = a.devices()[primary]
        self.peer_index = b.devices()[peer]

    def attach(self, prog, side: str = "primary", **kw):
        """``prog`` on this pair's ``side`` by the primary's name, from inside its namespace."""
        return self.a.run(lambda: prog.attach_netkit(self.primary, side, **kw))

    def sockets(self, port: int = PORT):
        """A UDP socket bound to the peer's address in the peer's namespace, and a sender in the
        primary's: each stays in its namespace, whichever thread uses it."""
        def bound():
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((PEER_ADDR, port))
            return s
        rx, tx = self.b.run(bound), self.a.run(socket.socket, socket.AF_INET, socket.SOCK_DGRAM)
        rx.settimeout(10)
        tx.settimeout(10)
        return rx, tx

    def roundtrip(self, n: int, port: int = PORT, size: int = 16) -> None:
        """``n`` datagrams primary -> peer, each echoed back and waited for."""
        rx, tx = self.sockets(port)
        with rx, tx:
            for i in range(n):
                data = bytes([i % 256]) * size
                tx.sendto(data, (PEER_ADDR, port))
                got, addr = rx.recvfrom(2048)
                assert got == data
                rx.sendto(got, addr)
                assert tx.recv(2048) == data

    def lost(self, n: int, port: int = PORT) -> int:
        """``n`` datagrams primary -> peer that a drop program should stop: how many arrived."""
        rx, tx = self.sockets(port)
        with rx, tx:
            for i in range(n):
                tx.sendto(bytes([i]), (PEER_ADDR, port))
            rx.settimeout(0.5)
            arrived = 0
            try:
                while True:
                    rx.recv(64)
                    arrived += 1
            except TimeoutError:
                return arrived


@pytest.fixture
def pair():
    """A netkit pair (default L3 mode, policy pass): primary ``nkebpfpy`` at 10.201.0.1 in
    namespace a, its peer at 10.201.0.2 in namespace b. Deleted, namespaces ended, afterwards."""
    if not features.has("netkit"):  # the marker skips first; this keeps the fixture honest alone
        pytest.skip(features.reason("netkit"))
    a, b = Namespace(), Namespace()
    try:
        for ns in (a, b):
            ns.ip("link", "set", "lo", "up")
        a.ip("link", "add", "nkebpfpy", "type", "netkit")  # busybox: the peer gets the kernel's name
        [peer] = set(a.devices()) - {"lo", "nkebpfpy"}
        a.ip("link", "set", peer, "netns", str(b.proc.pid))
        a.ip("addr", "add", f"{PRIMARY_ADDR}/24", "dev", "nkebpfpy")
        b.ip("addr", "add", f"{PEER_ADDR}/24", "dev", peer)
        a.ip("link", "set", "nkebpfpy", "up")
        b.ip("link", "set", peer, "up")
        yield Pair(a, b, "nkebpfpy", peer)
        a.ip("link", "del", "nkebpfpy")  # the peer goes with it
        assert set(a.devices()) == set(b.devices()) == {"lo"}
    finally:
        a.close()
        b.close()
    assert a.proc.returncode is not None and b.proc.returncode is not None


def udp_counter(counts, slot: int, *, port_at: int = UDP_DPORT, verdict: int = NETKIT_NEXT) -> Program:
    """A netkit program: counts[slot] += 1 for each IPv4 UDP datagram whose port at ``port_at``
    (destination or source) is PORT, and returns ``verdict`` for those; NETKIT_NEXT for the rest
    (IPv6 neighbour discovery and the like, which a fresh device sends too)."""
    b = Builder()
    b.mov(R6, R1)
    b.ldx(4, R2, R6, SKB_DATA)
    b.ldx(4, R3, R6, SKB_DATA_END)
    b.mov(R4, R2)
    b.add(R4, 14 + 20 + 8)  # Ethernet, IP and UDP headers
    b.jgt(R4, R3, "other")
    b.ldx(2, R5, R2, ETH_PROTO)
    b.jne(R5, socket.htons(0x0800), "other")
    b.ldx(1, R5, R2, IP_PROTO)
    b.jne(R5, 17, "other")
    b.ldx(2, R5, R2, port_at)
    b.jne(R5, socket.htons(PORT), "other")
    b.st(4, FP, slot, -4)
    b.ld_map_fd(R1, counts)
    b.mov(R2, FP)
    b.add(R2, -4)
    b.call("map_lookup_elem")
    b.jeq(R0, 0, "verdict")
    b.mov(R1, 1)
    b.atomic("add", 8, R0, R1, 0)
    b.label("verdict")
    b.mov(R0, verdict)
    b.exit()
    b.label("other")
    b.mov(R0, NETKIT_NEXT)
    b.exit()
    return Program.load("sched_cls", b.build(), name="netkit_test")


@pytest.mark.netkit
def test_netkit_counts_both_ways_and_detaches(pair, leaks):
    """The primary side sees each datagram to the peer once, the peer side each reply once; the
    link info names the hook; closing a link takes its program off at once."""
    with new_counts() as counts, udp_counter(counts, 0) as to_peer, \
            udp_counter(counts, 1, port_at=UDP_SPORT) as from_peer:
        primary = pair.attach(to_peer, "primary")
        peer = pair.attach(from_peer, "peer")
        with primary, peer:
            for link, prog, at in ((primary, to_peer, AttachType.NETKIT_PRIMARY),
                                   (peer, from_peer, AttachType.NETKIT_PEER)):
                info = link.info()
                assert info.type_enum == LinkType.NETKIT and info.prog_id == prog.info().id
                assert info.details["attach_type"] == at
            # a peer link's device is the peer (its index in the peer's namespace)
            assert primary.info().details["ifindex"] == pair.primary_index
            assert peer.info().details["ifindex"] == pair.peer_index
            assert primary.description == "netkit/primary:nkebpfpy"
            assert peer.description == "netkit/peer:nkebpfpy"
            leaks.snapshot()
            pair.roundtrip(N)
            assert (counts[0], counts[1]) == (N, N)
            peer.close()
            pair.roundtrip(2)
            assert (counts[0], counts[1]) == (N + 2, N)
        pair.roundtrip(3)  # both detached
        assert (counts[0], counts[1]) == (N + 2, N)


@pytest.mark.netkit
def test_netkit_program_order_drop_and_revision(pair, leaks):
    """Two programs on one hook run in the order ``before``/``after`` give them: a counter
    returning NETKIT_NEXT and a dropper returning NETKIT_DROP. Dropper after the counter: both
    count, nothing arrives; dropper first: the counter never sees the datagrams."""
    with new_counts() as counts, udp_counter(counts, 0) as counter, \
            udp_counter(counts, 1, verdict=NETKIT_DROP) as dropper:
        with pair.attach(counter, expected_revision=1) as first:  # a fresh pair's hooks are at revision 1
            leaks.snapshot()
            with pair.attach(dropper, after=first) as last:  # BPF_F_AFTER | BPF_F_LINK
                assert last.description == f"netkit/primary:nkebpfpy (after link fd {first.fd})"
                leaks.snapshot()
                assert pair.lost(4) == 0
                assert (counts[0], counts[1]) == (4, 4)
                with pytest.raises(BPFError) as again:  # one program once per hook
                    pair.attach(dropper)
                assert again.value.errno == errno.EEXIST and "already on this hook" in str(again.value)
            with pair.attach(dropper, before=counter):  # BPF_F_BEFORE, by program fd
                assert pair.lost(3) == 0
                assert (counts[0], counts[1]) == (4, 7)
            with pair.attach(dropper, before=True):  # the first place
                assert pair.lost(2) == 0
                assert (counts[0], counts[1]) == (4, 9)
            with udp_counter(counts, 2) as elsewhere, pytest.raises(BPFError) as missing:
                pair.attach(dropper, after=elsewhere)  # a program that is not on the hook
            assert missing.value.errno == errno.ENOENT and "not on this hook" in str(missing.value)
            with pytest.raises(BPFError) as stale:
                pair.attach(dropper, expected_revision=1)  # the hook has changed since
            assert stale.value.errno == errno.ESTALE and "expected_revision" in str(stale.value)
            pair.roundtrip(2)  # the dropper is gone: datagrams pass again
            assert (counts[0], counts[1]) == (6, 9)
        with pytest.raises(ValueError, match="before or after"):
            pair.attach(dropper, before=True, after=True)


@pytest.mark.netkit
def test_netkit_refusals_are_explained(pair, leaks):
    """The kernel's netkit checks answer with bare errnos: the error says which rule it was."""
    with new_counts() as counts, udp_counter(counts, 0) as prog:
        with pair.attach(prog) as link:  # something for leaks to see
            leaks.snapshot()
            assert link.info().type_enum == LinkType.NETKIT
        # the peer, in its own namespace: its hooks are reached through the primary
        with pytest.raises(BPFError) as peer:
            pair.b.run(lambda: attach_netkit(prog, pair.peer, "peer"))
        assert peer.value.errno == errno.EACCES
        assert f"netkit/peer:{pair.peer}" in str(peer.value) and "primary's ifindex" in str(peer.value)
        with pytest.raises(BPFError) as lo:
            pair.a.run(lambda: prog.attach_netkit("lo"))
        assert lo.value.errno == errno.ENXIO and "not a netkit device" in str(lo.value)
        with pytest.raises(BPFError) as gone:  # the peer's index means nothing in a's namespace
            pair.a.run(lambda: prog.attach_netkit(4000))
        assert gone.value.errno == errno.ENODEV and "no such device" in str(gone.value)
        with pytest.raises(ValueError, match="'primary' or 'peer'"):
            prog.attach_netkit(pair.primary, "ingress")


@pytest.mark.netkit
def test_netkit_object_sections_attach_by_name(pair, tmp_path, leaks):
    """netkit.bpf.c's ``netkit/primary`` and ``netkit/peer`` programs, attached by section name on
    the primary (``attach(iface=)``) and explicitly (``attach_netkit``): datagrams and bytes each
    way, counted in the object's map."""
    from ebpfpy.elf import load_object

    path = bpf_object("netkit", tmp_path)
    obj = load_object(path)
    obj.globals["port"] = PORT
    with obj.load():
        to_peer, from_peer = obj.programs["nk_to_peer"], obj.programs["nk_from_peer"]
        assert (to_peer.link_target, to_peer.expected_attach_type) == ("iface", AttachType.NETKIT_PRIMARY)
        assert (from_peer.link_target, from_peer.expected_attach_type) == ("iface", AttachType.NETKIT_PEER)
        [att] = pair.a.run(lambda: to_peer.attach(iface=pair.primary))  # the section says primary
        link = pair.a.run(lambda: from_peer.attach_netkit(pair.primary_index))  # and peer
        assert att.parts[0].info().details["attach_type"] == AttachType.NETKIT_PRIMARY
        assert link.info().details["attach_type"] == AttachType.NETKIT_PEER
        leaks.snapshot()
        pair.roundtrip(N, size=32)
        c = [obj.maps["counts"][i] for i in range(4)]
        assert c == [N, N * (14 + 20 + 8 + 32), N, N * (14 + 20 + 8 + 32)]  # skb->len: from the Ethernet header
    # closing the object closed both links (leaks checks they are gone)


def test_feature_probe_answers():
    """Everywhere (no netkit marker): an answer, and where it is no, a reason naming netkit."""
    ok = features.has("netkit")
    assert isinstance(ok, bool) and (ok or "netkit" in features.reason("netkit"))


@pytest.mark.clang
@pytest.mark.btf
def test_layouts_match_the_kernel_btf(tmp_path):
    """link_create.netkit {relative_fd, expected_revision} and bpf_link_info's netkit and tcx
    members against this kernel's BTF (present without CONFIG_NETKIT: they are bpf uapi, not the
    driver's), so the layouts are checked here too: static asserts compiled for BPF."""
    from helpers import write_vmlinux_h

    from ebpfpy.sys.layouts import LINK_CREATE, LINK_INFO_IFACE

    write_vmlinux_h(tmp_path)
    checks = [(f"union bpf_attr, link_create.netkit.{f}", LINK_CREATE.fields[f][0])
              for f in ("relative_fd", "expected_revision")]
    checks += [(f"struct bpf_link_info, {kind}.{f}", off) for kind in ("netkit", "tcx")
               for f, (off, _) in LINK_INFO_IFACE.fields.items()]
    lines = ['#include "vmlinux.h"']
    lines += [f'_Static_assert(__builtin_offsetof({expr}) == {off}, "{expr}");' for expr, off in checks]
    (tmp_path / "layout.c").write_text("\n".join(lines) + "\n")
    proc = subprocess.run(["clang-19", "-target", "bpf", "-fsyntax-only", "-I", str(tmp_path),
                           str(tmp_path / "layout.c")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
