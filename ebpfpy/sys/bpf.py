"""One function per bpf() command: Python values in, fds/bytes/dataclasses out.

Deliberately thin, like libbpf's bpf.c: each command's ``union bpf_attr``
member is a table of ``field -> (offset, struct format)`` (offsets from the
uapi header, in ``layouts``), packed into a zeroed buffer that is exactly as
long as the last field the caller set. Kernels reject non-zero bytes past the
fields they know, so a call that uses only old fields also works on old kernels.
All policy (retries aside from the verifier log, typing, iteration) lives
in the loader layer above.

The commands live in one module per kind, all through ``bpf_call`` (the raw
call and the memory its attributes point at): ``bpf_maps`` (map create,
elements, batches), ``bpf_progs`` (program and BTF load with the verifier-log
retry, test runs, map binding, stats), ``bpf_links`` (raw tracepoints, link
create in its forms, iterators, detach) and ``bpf_objects`` (pin and get, ids,
object info). This module gathers them, so callers write ``from ebpfpy.sys
import bpf`` and ``bpf.map_create(...)`` whatever module a command is in;
new commands go into the module of their kind, and their name here.
"""
from __future__ import annotations

from ebpfpy.sys.bpf_call import BPF_TAG_SIZE, OBJ_NAME_LEN, obj_name
from ebpfpy.sys.bpf_links import (
    iter_create,
    link_create,
    link_create_iter,
    link_create_kprobe_multi,
    link_create_netfilter,
    link_create_uprobe_multi,
    link_detach,
    raw_tracepoint_open,
)
from ebpfpy.sys.bpf_maps import (
    BatchResult,
    map_create,
    map_delete_batch,
    map_delete_elem,
    map_freeze,
    map_get_next_key,
    map_lookup_and_delete_batch,
    map_lookup_and_delete_elem,
    map_lookup_batch,
    map_lookup_elem,
    map_update_batch,
    map_update_elem,
)
from ebpfpy.sys.bpf_objects import (
    BTFInfo,
    LinkInfo,
    MapInfo,
    ProgInfo,
    btf_get_fd_by_id,
    btf_get_next_id,
    btf_info,
    iter_ids,
    link_get_fd_by_id,
    link_get_next_id,
    link_info,
    map_get_fd_by_id,
    map_get_next_id,
    map_info,
    obj_get,
    obj_get_info_by_fd,
    obj_pin,
    prog_get_fd_by_id,
    prog_get_next_id,
    prog_info,
)
from ebpfpy.sys.bpf_progs import (
    LOG_BUF_MAX,
    LOG_BUF_START,
    TestRunResult,
    btf_load,
    btf_load_with_log,
    enable_stats,
    prog_bind_map,
    prog_load,
    prog_load_with_log,
    prog_test_run,
)

# The attribute and info layouts, importable from here as they always were (tests read their offsets).
from ebpfpy.sys.layouts import (
    BTF_INFO,
    BTF_LOAD,
    ENABLE_STATS,
    GET_ID,
    INFO,
    ITER_CREATE,
    LINK_CREATE,
    LINK_DETACH,
    LINK_INFO,
    LINK_INFO_DETAILS,
    LINK_INFO_SIZE,
    MAP_BATCH,
    MAP_CREATE,
    MAP_ELEM,
    MAP_FREEZE,
    MAP_INFO,
    OBJ,
    PROG_BIND_MAP,
    PROG_INFO,
    PROG_LOAD,
    RAW_TP,
    TEST_RUN,
)

__all__ = [
    "BPF_TAG_SIZE", "BTF_INFO", "BTF_LOAD", "ENABLE_STATS", "GET_ID", "INFO", "ITER_CREATE", "LINK_CREATE",
    "LINK_DETACH", "LINK_INFO", "LINK_INFO_DETAILS", "LINK_INFO_SIZE", "LOG_BUF_MAX", "LOG_BUF_START", "MAP_BATCH",
    "MAP_CREATE", "MAP_ELEM", "MAP_FREEZE", "MAP_INFO", "OBJ", "OBJ_NAME_LEN", "PROG_BIND_MAP", "PROG_INFO",
    "PROG_LOAD", "RAW_TP", "TEST_RUN", "BTFInfo", "BatchResult", "LinkInfo", "MapInfo", "ProgInfo", "TestRunResult",
    "btf_get_fd_by_id", "btf_get_next_id", "btf_info", "btf_load", "btf_load_with_log", "enable_stats", "iter_create",
    "iter_ids", "link_create", "link_create_iter", "link_create_kprobe_multi", "link_create_netfilter",
    "link_create_uprobe_multi", "link_detach", "link_get_fd_by_id", "link_get_next_id", "link_info", "map_create",
    "map_delete_batch", "map_delete_elem", "map_freeze", "map_get_fd_by_id", "map_get_next_id", "map_get_next_key",
    "map_info", "map_lookup_and_delete_batch", "map_lookup_and_delete_elem", "map_lookup_batch", "map_lookup_elem",
    "map_update_batch", "map_update_elem", "obj_get", "obj_get_info_by_fd", "obj_name", "obj_pin", "prog_bind_map",
    "prog_get_fd_by_id", "prog_get_next_id", "prog_info", "prog_load", "prog_load_with_log", "prog_test_run",
    "raw_tracepoint_open",
]
