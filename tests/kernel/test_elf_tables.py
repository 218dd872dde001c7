"""Pure parts of the ELF loader: section-name table and global-data map names."""
import pytest

from ebpfpy.elf.mapdefs import internal_map_name
from ebpfpy.elf.sections import classify
from ebpfpy.sys.consts import AttachType, ProgType


@pytest.mark.parametrize("section,ptype,attach,probe", [
    ("tracepoint/syscalls/sys_enter_write", ProgType.TRACEPOINT, 0, "tracepoint:syscalls:sys_enter_write"),
    ("tp/sched/sched_switch", ProgType.TRACEPOINT, 0, "tracepoint:sched:sched_switch"),
    ("raw_tracepoint/sys_enter", ProgType.RAW_TRACEPOINT, 0, "rawtracepoint:sys_enter"),
    ("raw_tp/sys_exit", ProgType.RAW_TRACEPOINT, 0, "rawtracepoint:sys_exit"),
    ("kprobe/do_sys_open", ProgType.KPROBE, 0, "kprobe:do_sys_open"),
    ("kretprobe/do_sys_open", ProgType.KPROBE, 0, "kretprobe:do_sys_open"),
    ("uprobe//bin/bash:readline", ProgType.KPROBE, 0, "uprobe:/bin/bash:readline"),
    ("uretprobe//lib/libc.so.6:malloc", ProgType.KPROBE, 0, "uretprobe:/lib/libc.so.6:malloc"),
    ("usdt/./app:prov:probe", ProgType.KPROBE, 0, "usdt:./app:prov:probe"),
    ("kprobe", ProgType.KPROBE, 0, None),
    ("socket", ProgType.SOCKET_FILTER, 0, None),
    ("xdp", ProgType.XDP, AttachType.XDP, None),
    ("perf_event", ProgType.PERF_EVENT, 0, None),
    ("fentry/do_unlinkat", ProgType.TRACING, AttachType.TRACE_FENTRY, None),
    ("fexit/do_unlinkat", ProgType.TRACING, AttachType.TRACE_FEXIT, None),
    ("tp_btf/sched_switch", ProgType.TRACING, AttachType.TRACE_RAW_TP, None),
    ("fmod_ret/security_file_open", ProgType.TRACING, AttachType.MODIFY_RETURN, None),
    ("lsm/file_open", ProgType.LSM, AttachType.LSM_MAC, None),
    ("lsm.s/file_open", ProgType.LSM, AttachType.LSM_MAC, None),
    ("iter/task", ProgType.TRACING, AttachType.TRACE_ITER, None),
    ("iter.s/task_file", ProgType.TRACING, AttachType.TRACE_ITER, None),
    ("kprobe.multi/vfs_*", ProgType.KPROBE, AttachType.TRACE_KPROBE_MULTI, "kprobe:vfs_*"),
    ("kretprobe.multi/vfs_read", ProgType.KPROBE, AttachType.TRACE_KPROBE_MULTI, "kretprobe:vfs_read"),
])
def test_classify(section, ptype, attach, probe):
    k = classify(section)
    assert (k.prog_type, k.attach_type, k.probe) == (ptype, int(attach), probe)


@pytest.mark.parametrize("section", ["socket/extra", "xdpfoo", ".text", "license", "tracepointx/a/b"])
def test_unknown_sections(section):
    assert classify(section) is None


@pytest.mark.parametrize("obj,section,name", [
    ("core_task", ".rodata", "core_tas.rodata"),
    ("core_task", ".bss", "core_tas.bss"),
    ("x", ".data", "x.data"),
    ("calls_data", ".rodata.str1.1", ".rodata.str1.1"),
    ("calls_data", ".data.counters", ".data.counters"),
    ("a-b", ".bss", "a_b.bss"),
])
def test_internal_map_names_follow_libbpf(obj, section, name):
    assert internal_map_name(obj, section) == name


@pytest.mark.parametrize("section,flags", [("fentry.s/f", 1 << 4), ("iter.s/task", 1 << 4), ("iter/task", 0)])
def test_sleepable_sections(section, flags):
    assert classify(section).prog_flags == flags
