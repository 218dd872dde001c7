"""Numbers from the uapi (include/uapi/linux/bpf.h) as IntEnums.

Each enum is written as a table in uapi order, so a reader can hold it
against the header; ``tests/kernel/test_sys.py`` checks every value against
the installed header. Names drop the uapi prefix: ``MapType.HASH`` is
``BPF_MAP_TYPE_HASH``; ``uapi_name()`` gives the prefixed form back.
"""
from __future__ import annotations

import enum


def _enum(name: str, names: str, start: int = 0) -> type[enum.IntEnum]:
    """An IntEnum numbered in the order the uapi lists the names."""
    return enum.IntEnum(name, [(n, i) for i, n in enumerate(names.split(), start)])


Cmd = _enum("Cmd", """
    MAP_CREATE MAP_LOOKUP_ELEM MAP_UPDATE_ELEM MAP_DELETE_ELEM MAP_GET_NEXT_KEY
    PROG_LOAD OBJ_PIN OBJ_GET PROG_ATTACH PROG_DETACH PROG_TEST_RUN
    PROG_GET_NEXT_ID MAP_GET_NEXT_ID PROG_GET_FD_BY_ID MAP_GET_FD_BY_ID
    OBJ_GET_INFO_BY_FD PROG_QUERY RAW_TRACEPOINT_OPEN BTF_LOAD BTF_GET_FD_BY_ID
    TASK_FD_QUERY MAP_LOOKUP_AND_DELETE_ELEM MAP_FREEZE BTF_GET_NEXT_ID
    MAP_LOOKUP_BATCH MAP_LOOKUP_AND_DELETE_BATCH MAP_UPDATE_BATCH MAP_DELETE_BATCH
    LINK_CREATE LINK_UPDATE LINK_GET_FD_BY_ID LINK_GET_NEXT_ID ENABLE_STATS
    ITER_CREATE LINK_DETACH PROG_BIND_MAP TOKEN_CREATE
""")

MapType = _enum("MapType", """
    UNSPEC HASH ARRAY PROG_ARRAY PERF_EVENT_ARRAY PERCPU_HASH PERCPU_ARRAY
    STACK_TRACE CGROUP_ARRAY LRU_HASH LRU_PERCPU_HASH LPM_TRIE ARRAY_OF_MAPS
    HASH_OF_MAPS DEVMAP SOCKMAP CPUMAP XSKMAP SOCKHASH CGROUP_STORAGE
    REUSEPORT_SOCKARRAY PERCPU_CGROUP_STORAGE QUEUE STACK SK_STORAGE
    DEVMAP_HASH STRUCT_OPS RINGBUF INODE_STORAGE TASK_STORAGE BLOOM_FILTER
    USER_RINGBUF CGRP_STORAGE ARENA
""")

ProgType = _enum("ProgType", """
    UNSPEC SOCKET_FILTER KPROBE SCHED_CLS SCHED_ACT TRACEPOINT XDP PERF_EVENT
    CGROUP_SKB CGROUP_SOCK LWT_IN LWT_OUT LWT_XMIT SOCK_OPS SK_SKB
    CGROUP_DEVICE SK_MSG RAW_TRACEPOINT CGROUP_SOCK_ADDR LWT_SEG6LOCAL
    LIRC_MODE2 SK_REUSEPORT FLOW_DISSECTOR CGROUP_SYSCTL
    RAW_TRACEPOINT_WRITABLE CGROUP_SOCKOPT TRACING STRUCT_OPS EXT LSM
    SK_LOOKUP SYSCALL NETFILTER
""")

AttachType = _enum("AttachType", """
    CGROUP_INET_INGRESS CGROUP_INET_EGRESS CGROUP_INET_SOCK_CREATE
    CGROUP_SOCK_OPS SK_SKB_STREAM_PARSER SK_SKB_STREAM_VERDICT CGROUP_DEVICE
    SK_MSG_VERDICT CGROUP_INET4_BIND CGROUP_INET6_BIND CGROUP_INET4_CONNECT
    CGROUP_INET6_CONNECT CGROUP_INET4_POST_BIND CGROUP_INET6_POST_BIND
    CGROUP_UDP4_SENDMSG CGROUP_UDP6_SENDMSG LIRC_MODE2 FLOW_DISSECTOR
    CGROUP_SYSCTL CGROUP_UDP4_RECVMSG CGROUP_UDP6_RECVMSG CGROUP_GETSOCKOPT
    CGROUP_SETSOCKOPT TRACE_RAW_TP TRACE_FENTRY TRACE_FEXIT MODIFY_RETURN
    LSM_MAC TRACE_ITER CGROUP_INET4_GETPEERNAME CGROUP_INET6_GETPEERNAME
    CGROUP_INET4_GETSOCKNAME CGROUP_INET6_GETSOCKNAME XDP_DEVMAP
    CGROUP_INET_SOCK_RELEASE XDP_CPUMAP SK_LOOKUP XDP SK_SKB_VERDICT
    SK_REUSEPORT_SELECT SK_REUSEPORT_SELECT_OR_MIGRATE PERF_EVENT
    TRACE_KPROBE_MULTI LSM_CGROUP STRUCT_OPS NETFILTER TCX_INGRESS TCX_EGRESS
    TRACE_UPROBE_MULTI CGROUP_UNIX_CONNECT CGROUP_UNIX_SENDMSG
    CGROUP_UNIX_RECVMSG CGROUP_UNIX_GETPEERNAME CGROUP_UNIX_GETSOCKNAME
    NETKIT_PRIMARY NETKIT_PEER
""")

LinkType = _enum("LinkType", """
    UNSPEC RAW_TRACEPOINT TRACING CGROUP ITER NETNS XDP PERF_EVENT
    KPROBE_MULTI STRUCT_OPS NETFILTER TCX UPROBE_MULTI NETKIT SOCKMAP
""")

StatsType = _enum("StatsType", "RUN_TIME")


class MapFlag(enum.IntFlag):
    """``map_flags`` of BPF_MAP_CREATE (BPF_F_*)."""

    NO_PREALLOC = 1 << 0
    NO_COMMON_LRU = 1 << 1
    NUMA_NODE = 1 << 2
    RDONLY = 1 << 3
    WRONLY = 1 << 4
    STACK_BUILD_ID = 1 << 5
    ZERO_SEED = 1 << 6
    RDONLY_PROG = 1 << 7
    WRONLY_PROG = 1 << 8
    CLONE = 1 << 9
    MMAPABLE = 1 << 10
    PRESERVE_ELEMS = 1 << 11
    INNER_MAP = 1 << 12
    LINK = 1 << 13
    PATH_FD = 1 << 14


class UpdateFlag(enum.IntEnum):
    """``flags`` of BPF_MAP_UPDATE_ELEM."""

    ANY = 0
    NOEXIST = 1
    EXIST = 2
    LOCK = 4


class ProgFlag(enum.IntFlag):
    """``prog_flags`` of BPF_PROG_LOAD."""

    STRICT_ALIGNMENT = 1 << 0
    ANY_ALIGNMENT = 1 << 1
    TEST_RND_HI32 = 1 << 2
    TEST_STATE_FREQ = 1 << 3
    SLEEPABLE = 1 << 4
    XDP_HAS_FRAGS = 1 << 5
    XDP_DEV_BOUND_ONLY = 1 << 6


class TestRunFlag(enum.IntFlag):
    """``flags`` of BPF_PROG_TEST_RUN."""

    __test__ = False  # not a pytest class
    RUN_ON_CPU = 1 << 0
    XDP_LIVE_FRAMES = 1 << 1


class XdpFlag(enum.IntFlag):
    """``flags`` of an XDP attachment (XDP_FLAGS_* of linux/if_link.h); no mode flag lets the
    kernel pick the driver's native mode, else the generic (skb) one."""

    UPDATE_IF_NOEXIST = 1 << 0
    SKB_MODE = 1 << 1
    DRV_MODE = 1 << 2
    HW_MODE = 1 << 3
    REPLACE = 1 << 4


BPF_F_UPROBE_MULTI_RETURN = 1 << 0  # uprobe_multi link flags: uretprobes
BPF_F_KPROBE_MULTI_RETURN = 1 << 0  # kprobe_multi link flags: kretprobes
BPF_F_NETFILTER_IP_DEFRAG = 1 << 0  # netfilter link flags: the program sees reassembled IP packets (6.6+)
# tcx and netkit link flags (bpf_mprog, 6.6+): where a program goes among those already on the hook,
# relative to the program (or with BPF_F_LINK the link) named by relative_fd (BPF_F_ID: by id);
# BEFORE or AFTER with no relative is the first or the last place
BPF_F_BEFORE = 1 << 3
BPF_F_AFTER = 1 << 4
BPF_F_ID = 1 << 5
BPF_F_LINK = 1 << 13


class NfProto(enum.IntEnum):
    """Protocol families of netfilter hooks (NFPROTO_* of linux/netfilter.h): a netfilter link's
    ``pf``. BPF netfilter links take IPV4 and IPV6 only."""

    UNSPEC = 0
    INET = 1
    IPV4 = 2
    ARP = 3
    NETDEV = 5
    BRIDGE = 7
    IPV6 = 10


class NfHook(enum.IntEnum):
    """The IPv4/IPv6 netfilter hooks (NF_INET_* of linux/netfilter.h): a netfilter link's ``hooknum``."""

    PRE_ROUTING = 0
    LOCAL_IN = 1
    FORWARD = 2
    LOCAL_OUT = 3
    POST_ROUTING = 4


# Verdicts: what a netfilter program returns (NF_DROP/NF_ACCEPT, the only two the verifier lets it
# return), and an sk_lookup (or sk_skb, sk_msg) program (SK_DROP/SK_PASS).
NF_DROP, NF_ACCEPT = 0, 1
SK_DROP, SK_PASS = 0, 1
# A netkit program's verdict (enum netkit_action, linux/if_link.h): NEXT runs the next program on the
# hook (after the last one, the device's default policy decides), PASS and DROP end the list there,
# REDIRECT goes with bpf_redirect*(). A tcx program's TCX_NEXT/PASS/DROP/REDIRECT are the same numbers.
NETKIT_NEXT, NETKIT_PASS, NETKIT_DROP, NETKIT_REDIRECT = -1, 0, 2, 7


class OpenFlag(enum.IntFlag):
    """``file_flags``/``open_flags`` of BPF_OBJ_GET and *_GET_FD_BY_ID."""

    RDONLY = 1 << 3
    WRONLY = 1 << 4


# Flag arguments of helpers, as the uapi spells them: the one home for
# codegen, events and the bpftrace compiler.
BPF_F_CURRENT_CPU = 0xFFFFFFFF  # perf_event_output: the slot of the running CPU
BPF_F_SKIP_FIELD_MASK = 0xFF  # get_stackid/get_stack: frames to skip
BPF_F_USER_STACK = 1 << 8
BPF_F_FAST_STACK_CMP = 1 << 9
BPF_F_REUSE_STACKID = 1 << 10
BPF_RB_NO_WAKEUP = 1 << 0  # ringbuf_output/submit: do not wake the consumer (it polls)
BPF_RB_FORCE_WAKEUP = 1 << 1  # ... or wake it now
PERF_MAX_STACK_DEPTH = 127  # frames in a STACK_TRACE map value (kernel.perf_event_max_stack default)


# The uapi prefix of each enum, for printing names the way bpftool does.
UAPI_PREFIX = {
    Cmd: "BPF_",
    MapType: "BPF_MAP_TYPE_",
    ProgType: "BPF_PROG_TYPE_",
    AttachType: "BPF_",
    LinkType: "BPF_LINK_TYPE_",
    StatsType: "BPF_STATS_",
}


def uapi_name(value: enum.IntEnum) -> str:
    """``MapType.HASH`` -> ``"BPF_MAP_TYPE_HASH"``."""
    return UAPI_PREFIX[type(value)] + value.name


def lookup(enum_type: type[enum.IntEnum], value) -> enum.IntEnum:
    """Accept an enum member, an int, or a name in any case ("percpu_hash", "BPF_MAP_TYPE_HASH")."""
    if isinstance(value, enum_type):
        return value
    if isinstance(value, int):
        return enum_type(value)
    name = str(value).upper()
    prefix = UAPI_PREFIX.get(enum_type, "")
    if prefix and name.startswith(prefix):
        name = name[len(prefix):]
    try:
        return enum_type[name]
    except KeyError:
        raise ValueError(f"unknown {enum_type.__name__}: {value!r}") from None


def type_name(enum_type: type[enum.IntEnum], value: int) -> str:
    """Lower-case name as bpftool prints it ("hash", "socket_filter"), or the number."""
    try:
        return enum_type(value).name.lower()
    except ValueError:
        return str(value)
