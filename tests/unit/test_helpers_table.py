"""The helper table agrees with the installed uapi header and covers what bpftrace 0.17 calls."""

import re
from pathlib import Path

import pytest

from ebpfpy.isa import _gen_helpers
from ebpfpy.isa.helpers import (
    HELPERS_BY_ID,
    HELPERS_BY_NAME,
    ArgKind,
    Helper,
    RetKind,
    UnknownHelperError,
    helper,
)

HEADER = Path("/usr/include/linux/bpf.h")
needs_header = pytest.mark.skipif(not HEADER.exists(), reason="linux uapi headers not installed")


def header_ids() -> dict[str, int]:
    """Parse ``__BPF_FUNC_MAPPER`` here, independently of the generator."""
    text = HEADER.read_text()
    block = text[text.index("#define __BPF_FUNC_MAPPER(FN)"):]
    block = block[: block.index("\n\n")]  # the macro ends at the first blank line
    ids = {}
    for n, m in enumerate(re.finditer(r"FN\((\w+)(?:,\s*(\d+))?", block)):
        ids[m.group(1)] = int(m.group(2)) if m.group(2) else n
    return ids


@needs_header
def test_every_header_helper_has_its_id():
    ids = header_ids()
    assert len(ids) > 150
    assert {name: h.id for name, h in HELPERS_BY_NAME.items()} == ids
    assert {h.id: h.name for h in HELPERS_BY_ID.values()} == {v: k for k, v in ids.items()}


@needs_header
def test_generator_reproduces_the_table_in_the_module():
    ids = _gen_helpers.parse_helper_ids(HEADER.read_text())
    assert ids == header_ids()
    source = Path(_gen_helpers.__file__).with_name("helpers.py").read_text()
    assert _gen_helpers.render(ids) in source


def test_generator_reads_the_newer_explicit_id_form():
    text = "#define __BPF_FUNC_MAPPER(FN, ctx...)\t\\\n\tFN(unspec, 0, ##ctx)\t\\\n\tFN(map_lookup_elem, 1, ##ctx)\t\\\n" \
           "\tFN(user_ringbuf_drain, 209, ##ctx)\t\\\n\t/* */\n\nenum x {};\n"
    text = text.replace("(FN, ctx...)", "(FN)", 1)
    assert _gen_helpers.parse_helper_ids(text) == {"unspec": 0, "map_lookup_elem": 1, "user_ringbuf_drain": 209}


BPFTRACE_HELPERS = [
    "map_lookup_elem", "map_update_elem", "map_delete_elem", "probe_read", "probe_read_str",
    "probe_read_user", "probe_read_user_str", "probe_read_kernel", "probe_read_kernel_str",
    "ktime_get_ns", "ktime_get_boot_ns", "get_current_pid_tgid", "get_current_uid_gid",
    "get_current_comm", "get_smp_processor_id", "get_current_task", "get_current_cgroup_id",
    "get_prandom_u32", "perf_event_output", "ringbuf_output", "ringbuf_reserve", "ringbuf_submit",
    "ringbuf_discard", "get_stackid", "send_signal", "override_return", "get_func_ip",
    "trace_printk", "get_ns_current_pid_tgid", "jiffies64", "d_path", "snprintf", "get_numa_node_id",
]


@pytest.mark.parametrize("name", BPFTRACE_HELPERS)
def test_bpftrace_helpers_have_signatures(name):
    h = HELPERS_BY_NAME[name]
    assert h.args is not None and h.ret is not None
    assert len(h.args) <= 5
    # every memory argument is followed by its size
    for kind, nxt in zip(h.args, h.args[1:] + (None,)):
        if kind in (ArgKind.MEM, ArgKind.UNINIT_MEM, ArgKind.MEM_OR_NULL):
            assert nxt is not None and nxt.is_size, (name, h.args)


def test_signature_facts_that_codegen_relies_on():
    lookup = helper("map_lookup_elem")
    assert lookup.args == (ArgKind.MAP_PTR, ArgKind.MAP_KEY)
    assert lookup.ret is RetKind.MAP_VALUE_OR_NULL and lookup.ret.needs_null_check
    assert helper("ringbuf_reserve").ret.needs_null_check
    assert not helper("ktime_get_ns").ret.needs_null_check
    assert helper("ringbuf_submit").ret is RetKind.VOID
    assert helper("perf_event_output").args[0] is ArgKind.CTX
    assert helper("trace_printk").required_args == 2
    assert helper("map_update_elem").required_args == 4
    assert helper("get_current_comm").args == (ArgKind.UNINIT_MEM, ArgKind.SIZE)
    assert not ArgKind.SCALAR.is_pointer and ArgKind.MAP_KEY.is_pointer


def test_lookup_by_name_prefix_id_and_helper():
    h = helper("map_lookup_elem")
    assert isinstance(h, Helper) and h.id == 1
    assert helper("bpf_map_lookup_elem") is h
    assert helper(1) is h
    assert helper(h) is h
    assert HELPERS_BY_ID[1] is h
    assert str(h) == "bpf_map_lookup_elem#1"
    assert helper("ktime_get_ns").id == 5


@pytest.mark.parametrize("bad", ["map_lookup", "bpf_nothing_at_all", "unspec", 100000, -1])
def test_unknown_helpers_raise(bad):
    with pytest.raises(UnknownHelperError):
        helper(bad)


def test_typo_suggests_the_real_name():
    with pytest.raises(UnknownHelperError, match="get_current_pid_tgid"):
        helper("get_current_pidtgid")
