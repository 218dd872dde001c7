"""The layouts of ``union bpf_attr``'s members and of the info structs, as field tables.

Each is ``field -> (offset, struct format)``, offsets from the uapi header
(``include/uapi/linux/bpf.h``); ``Layout.pack`` fills a zeroed buffer only
as long as the last field set, so old kernels see no bytes they do not know.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from ebpfpy.sys.consts import LinkType


@dataclass(frozen=True)
class Layout:
    """One member of ``union bpf_attr`` (or an info struct) as a field table."""

    name: str
    fields: dict  # name -> (offset, struct format)
    min_size: int = 4

    @property
    def size(self) -> int:
        return max(off + struct.calcsize("<" + fmt) for off, fmt in self.fields.values())

    def pack(self, **values) -> tuple[bytearray, int]:
        """Zeroed buffer with ``values`` set, and the size covering the last non-zero field."""
        buf = bytearray(self.size)
        used = self.min_size
        for key, value in values.items():
            off, fmt = self.fields[key]
            if not value:
                continue
            struct.pack_into("<" + fmt, buf, off, value)
            used = max(used, off + struct.calcsize("<" + fmt))
        return buf, used

    def unpack(self, buf, *names: str):
        """Field values read back from ``buf`` (one value, or a tuple for several names)."""
        out = []
        for key in names:
            off, fmt = self.fields[key]
            if off + struct.calcsize("<" + fmt) > len(buf):
                out.append(0)
                continue
            out.append(struct.unpack_from("<" + fmt, buf, off)[0])
        return out[0] if len(out) == 1 else tuple(out)

    def unpack_all(self, buf) -> dict:
        return {key: self.unpack(buf, key) for key in self.fields}


MAP_CREATE = Layout("map_create", {
    "map_type": (0, "I"), "key_size": (4, "I"), "value_size": (8, "I"),
    "max_entries": (12, "I"), "map_flags": (16, "I"), "inner_map_fd": (20, "I"),
    "numa_node": (24, "I"), "map_name": (28, "16s"), "map_ifindex": (44, "I"),
    "btf_fd": (48, "I"), "btf_key_type_id": (52, "I"), "btf_value_type_id": (56, "I"),
    "btf_vmlinux_value_type_id": (60, "I"), "map_extra": (64, "Q"),
}, min_size=16)

MAP_ELEM = Layout("map_elem", {
    "map_fd": (0, "I"), "key": (8, "Q"), "value": (16, "Q"), "flags": (24, "Q"),
}, min_size=32)

MAP_BATCH = Layout("map_batch", {
    "in_batch": (0, "Q"), "out_batch": (8, "Q"), "keys": (16, "Q"), "values": (24, "Q"),
    "count": (32, "I"), "map_fd": (36, "I"), "elem_flags": (40, "Q"), "flags": (48, "Q"),
}, min_size=56)

PROG_LOAD = Layout("prog_load", {
    "prog_type": (0, "I"), "insn_cnt": (4, "I"), "insns": (8, "Q"), "license": (16, "Q"),
    "log_level": (24, "I"), "log_size": (28, "I"), "log_buf": (32, "Q"),
    "kern_version": (40, "I"), "prog_flags": (44, "I"), "prog_name": (48, "16s"),
    "prog_ifindex": (64, "I"), "expected_attach_type": (68, "I"), "prog_btf_fd": (72, "I"),
    "func_info_rec_size": (76, "I"), "func_info": (80, "Q"), "func_info_cnt": (88, "I"),
    "line_info_rec_size": (92, "I"), "line_info": (96, "Q"), "line_info_cnt": (104, "I"),
    "attach_btf_id": (108, "I"), "attach_prog_fd": (112, "I"), "core_relo_cnt": (116, "I"),
    "fd_array": (120, "Q"), "core_relos": (128, "Q"), "core_relo_rec_size": (136, "I"),
    "log_true_size": (140, "I"),
}, min_size=48)

OBJ = Layout("obj", {"pathname": (0, "Q"), "bpf_fd": (8, "I"), "file_flags": (12, "I")}, min_size=16)

TEST_RUN = Layout("test", {
    "prog_fd": (0, "I"), "retval": (4, "I"), "data_size_in": (8, "I"), "data_size_out": (12, "I"),
    "data_in": (16, "Q"), "data_out": (24, "Q"), "repeat": (32, "I"), "duration": (36, "I"),
    "ctx_size_in": (40, "I"), "ctx_size_out": (44, "I"), "ctx_in": (48, "Q"), "ctx_out": (56, "Q"),
    "flags": (64, "I"), "cpu": (68, "I"), "batch_size": (72, "I"),
}, min_size=40)

GET_ID = Layout("get_id", {"start_id": (0, "I"), "next_id": (4, "I"), "open_flags": (8, "I")}, min_size=8)

INFO = Layout("info", {"bpf_fd": (0, "I"), "info_len": (4, "I"), "info": (8, "Q")}, min_size=16)

RAW_TP = Layout("raw_tracepoint", {"name": (0, "Q"), "prog_fd": (8, "I")}, min_size=12)

LINK_CREATE = Layout("link_create", {
    "prog_fd": (0, "I"), "target_fd": (4, "i"), "target_ifindex": (4, "I"), "attach_type": (8, "I"),
    "flags": (12, "I"),
    "target_btf_id": (16, "I"), "bpf_cookie": (16, "Q"), "tracing_cookie": (24, "Q"),
    # tcx and netkit (6.6+): where the new program goes relative to the attached ones
    "relative_fd": (16, "I"), "expected_revision": (24, "Q"),
    # uprobe_multi (6.6+): arrays of cnt entries, addresses in the caller's memory
    "uprobe_multi_path": (16, "Q"), "uprobe_multi_offsets": (24, "Q"),
    "uprobe_multi_ref_ctr_offsets": (32, "Q"), "uprobe_multi_cookies": (40, "Q"),
    "uprobe_multi_cnt": (48, "I"), "uprobe_multi_flags": (52, "I"), "uprobe_multi_pid": (56, "I"),
    # iterators: a pointer to union bpf_iter_link_info (map fd, task tid/pid, cgroup) and its size
    "iter_info": (16, "Q"), "iter_info_len": (24, "I"),
    # kprobe_multi (5.18+): symbols (char * array) or addresses, cnt entries each
    "kprobe_multi_flags": (16, "I"), "kprobe_multi_cnt": (20, "I"), "kprobe_multi_syms": (24, "Q"),
    "kprobe_multi_addrs": (32, "Q"), "kprobe_multi_cookies": (40, "Q"),
    # netfilter (6.4+): the hook the program goes on (NFPROTO_*, NF_INET_*, its priority among the
    # hook's functions: lower runs first) and BPF_F_NETFILTER_IP_DEFRAG
    "netfilter_pf": (16, "I"), "netfilter_hooknum": (20, "I"), "netfilter_priority": (24, "i"),
    "netfilter_flags": (28, "I"),
}, min_size=16)

ITER_CREATE = Layout("iter_create", {"link_fd": (0, "I"), "flags": (4, "I")}, min_size=8)

LINK_DETACH = Layout("link_detach", {"link_fd": (0, "I")}, min_size=4)
MAP_FREEZE = Layout("map_freeze", {"map_fd": (0, "I")}, min_size=4)
ENABLE_STATS = Layout("enable_stats", {"type": (0, "I")}, min_size=4)
PROG_BIND_MAP = Layout("prog_bind_map", {"prog_fd": (0, "I"), "map_fd": (4, "I"), "flags": (8, "I")},
                       min_size=12)

BTF_LOAD = Layout("btf_load", {
    "btf": (0, "Q"), "btf_log_buf": (8, "Q"), "btf_size": (16, "I"), "btf_log_size": (20, "I"),
    "btf_log_level": (24, "I"), "btf_log_true_size": (28, "I"),
}, min_size=20)

PROG_INFO = Layout("bpf_prog_info", {
    "type": (0, "I"), "id": (4, "I"), "tag": (8, "8s"), "jited_prog_len": (16, "I"),
    "xlated_prog_len": (20, "I"), "jited_prog_insns": (24, "Q"), "xlated_prog_insns": (32, "Q"),
    "load_time": (40, "Q"), "created_by_uid": (48, "I"), "nr_map_ids": (52, "I"),
    "map_ids": (56, "Q"), "name": (64, "16s"), "ifindex": (80, "I"), "gpl_compatible": (84, "I"),
    "netns_dev": (88, "Q"), "netns_ino": (96, "Q"), "nr_jited_ksyms": (104, "I"),
    "nr_jited_func_lens": (108, "I"), "jited_ksyms": (112, "Q"), "jited_func_lens": (120, "Q"),
    "btf_id": (128, "I"), "func_info_rec_size": (132, "I"), "func_info": (136, "Q"),
    "nr_func_info": (144, "I"), "nr_line_info": (148, "I"), "line_info": (152, "Q"),
    "jited_line_info": (160, "Q"), "nr_jited_line_info": (168, "I"),
    "line_info_rec_size": (172, "I"), "jited_line_info_rec_size": (176, "I"),
    "nr_prog_tags": (180, "I"), "prog_tags": (184, "Q"), "run_time_ns": (192, "Q"),
    "run_cnt": (200, "Q"), "recursion_misses": (208, "Q"), "verified_insns": (216, "I"),
    "attach_btf_obj_id": (220, "I"), "attach_btf_id": (224, "I"),
}, min_size=232)

MAP_INFO = Layout("bpf_map_info", {
    "type": (0, "I"), "id": (4, "I"), "key_size": (8, "I"), "value_size": (12, "I"),
    "max_entries": (16, "I"), "map_flags": (20, "I"), "name": (24, "16s"), "ifindex": (40, "I"),
    "btf_vmlinux_value_type_id": (44, "I"), "netns_dev": (48, "Q"), "netns_ino": (56, "Q"),
    "btf_id": (64, "I"), "btf_key_type_id": (68, "I"), "btf_value_type_id": (72, "I"),
    "btf_vmlinux_id": (76, "I"), "map_extra": (80, "Q"),
}, min_size=88)

# struct bpf_link_info: a header, then a per-link-type union (first members shown).
LINK_INFO = Layout("bpf_link_info", {
    "type": (0, "I"), "id": (4, "I"), "prog_id": (8, "I"),
    "tp_name": (16, "Q"), "tp_name_len": (24, "I"),  # raw_tracepoint
    "attach_type": (24, "I"),  # tracing: {attach_type, target_obj_id, target_btf_id}
    "target_obj_id": (28, "I"), "target_btf_id": (32, "I"),
    "perf_event_type": (16, "I"),  # perf_event (6.6+)
}, min_size=16)
LINK_INFO_SIZE = 128  # room for every union member known today; the tail stays zero

# bpf_link_info's union members for the link types whose fields LinkInfo.details decodes
# (offsets from the start of struct bpf_link_info: the union starts at 16), by LinkType value.
LINK_INFO_NETNS = Layout("bpf_link_info.netns", {"netns_ino": (16, "I"), "attach_type": (20, "I")}, min_size=24)
LINK_INFO_NETFILTER = Layout("bpf_link_info.netfilter", {
    "pf": (16, "I"), "hooknum": (20, "I"), "priority": (24, "i"), "flags": (28, "I"),
}, min_size=32)
# tcx (6.6+) and netkit (6.7+) links: the device whose hook runs the program (for a netkit peer link
# the peer, though the link was made on the primary's index) and the hook (BPF_TCX_INGRESS/EGRESS,
# BPF_NETKIT_PRIMARY/PEER)
LINK_INFO_IFACE = Layout("bpf_link_info.netkit", {"ifindex": (16, "I"), "attach_type": (20, "I")}, min_size=24)
LINK_INFO_DETAILS = {LinkType.NETNS: LINK_INFO_NETNS, LinkType.NETFILTER: LINK_INFO_NETFILTER,
                     LinkType.TCX: LINK_INFO_IFACE, LinkType.NETKIT: LINK_INFO_IFACE}

BTF_INFO = Layout("bpf_btf_info", {
    "btf": (0, "Q"), "btf_size": (8, "I"), "id": (12, "I"), "name": (16, "Q"),
    "name_len": (24, "I"), "kernel_btf": (28, "I"),
}, min_size=32)
