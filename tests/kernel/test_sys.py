"""ebpfpy.sys: attribute layouts, errors, fd ownership, and each bpf() command against the kernel."""
import errno
import os
import pickle
import re
import shutil
import struct
import subprocess

import pytest
from helpers import open_fds, ret

from ebpfpy import bpffs, features
from ebpfpy.sys import bpf, perf
from ebpfpy.sys.consts import (
    AttachType,
    Cmd,
    LinkType,
    MapType,
    ProgType,
    lookup,
    uapi_name,
)
from ebpfpy.sys.errors import BPFError
from ebpfpy.sys.fd import FD

UAPI_BPF = "/usr/include/linux/bpf.h"




# --------------------------------------------------------------------------
# pure parts


def _uapi_enum(text, prefix):
    """name -> value of one uapi enum whose members are listed in order (implicit values)."""
    values, n = {}, 0
    for m in re.finditer(rf"^\s*({prefix}\w+)\s*(?:=\s*(\d+))?\s*,", text, re.M):
        if m.group(2) is not None:
            n = int(m.group(2))
        values[m.group(1)] = n
        n += 1
    return values


@pytest.mark.skipif(not os.path.exists(UAPI_BPF), reason="no uapi header")
@pytest.mark.parametrize("enum_type,prefix", [
    (Cmd, "BPF_"), (MapType, "BPF_MAP_TYPE_"), (ProgType, "BPF_PROG_TYPE_"),
    (LinkType, "BPF_LINK_TYPE_"),
])
def test_enums_match_uapi_header(enum_type, prefix):
    text = open(UAPI_BPF).read()
    block = {
        Cmd: r"enum bpf_cmd \{(.*?)\};", MapType: r"enum bpf_map_type \{(.*?)\};",
        ProgType: r"enum bpf_prog_type \{(.*?)\};", LinkType: r"enum bpf_link_type \{(.*?)\};",
    }[enum_type]
    body = re.search(block, text, re.S).group(1)
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    header = {k: v for k, v in _uapi_enum(body, prefix).items() if not k.startswith("__MAX")}
    header.pop("BPF_PROG_RUN", None)  # alias of BPF_PROG_TEST_RUN
    header.pop("BPF_MAP_TYPE_CGROUP_STORAGE_DEPRECATED", None)
    header.pop("BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE_DEPRECATED", None)
    assert header, "parsed nothing from the header"
    for name, value in header.items():
        assert int(lookup(enum_type, name)) == value, name


@pytest.mark.skipif(not os.path.exists(UAPI_BPF), reason="no uapi header")
def test_attach_types_match_uapi_header():
    body = re.search(r"enum bpf_attach_type \{(.*?)\};", open(UAPI_BPF).read(), re.S).group(1)
    header = _uapi_enum(re.sub(r"/\*.*?\*/", "", body, flags=re.S), "BPF_")
    header.pop("__MAX_BPF_ATTACH_TYPE", None)
    assert len(header) > 40
    for name, value in header.items():
        assert int(AttachType[name[4:]]) == value, name


def test_lookup_accepts_names_ints_members():
    assert lookup(MapType, "percpu_hash") is MapType.PERCPU_HASH
    assert lookup(MapType, "BPF_MAP_TYPE_RINGBUF") is MapType.RINGBUF
    assert lookup(ProgType, 5) is ProgType.TRACEPOINT
    assert uapi_name(ProgType.KPROBE) == "BPF_PROG_TYPE_KPROBE"
    with pytest.raises(ValueError):
        lookup(MapType, "no_such_map")


# Field -> C expression in the uapi header, for the layouts that name fields differently.
_C_NAMES = {
    "map_elem": lambda f: f,
    "map_batch": lambda f: f"batch.{f}",
    "test": lambda f: f"test.{f}",
    "info": lambda f: f"info.{f}",
    "raw_tracepoint": lambda f: f"raw_tracepoint.{f}",
    "link_create": lambda f: {"bpf_cookie": "link_create.perf_event.bpf_cookie",
                              "tracing_cookie": "link_create.tracing.cookie"}.get(
        f, f"link_create.kprobe_multi.{f[len('kprobe_multi_'):]}" if f.startswith("kprobe_multi_")
        else f"link_create.{f}"),
    "get_id": lambda f: f,
    "link_detach": lambda f: f"link_detach.{f}",
    "map_freeze": lambda f: f,
    "enable_stats": lambda f: f"enable_stats.{f}",
}
# Fields newer than a 6.1 header (the one Debian ships): checked on newer headers only.
# Bit-fields have no offsetof(): gpl_compatible is the word after ifindex.
_NEWER = {"log_true_size", "btf_log_true_size", "perf_event_type", "attach_type",
          "target_obj_id", "target_btf_id@bpf_link_info", "btf_vmlinux_id@bpf_map_info",
          "gpl_compatible@bpf_prog_info",
          # tcx and uprobe_multi (6.6+): test_links.py checks them against the kernel's BTF
          "relative_fd@link_create", "expected_revision@link_create",
          *(f"uprobe_multi_{f}@link_create" for f in ("path", "offsets", "ref_ctr_offsets", "cookies", "cnt",
                                                     "flags", "pid")),
          # netfilter (6.4+): test_net_links_more.py checks them against the kernel's BTF
          *(f"netfilter_{f}@link_create" for f in ("pf", "hooknum", "priority", "flags"))}


@pytest.mark.clang
@pytest.mark.skipif(not os.path.exists(UAPI_BPF), reason="no uapi header")
def test_layouts_match_uapi_offsets(tmp_path):
    """Every field offset of every attribute/info table, against offsetof() from the header."""
    checks = []
    for layout in (bpf.MAP_CREATE, bpf.MAP_ELEM, bpf.MAP_BATCH, bpf.PROG_LOAD, bpf.OBJ, bpf.TEST_RUN,
                   bpf.GET_ID, bpf.INFO, bpf.RAW_TP, bpf.LINK_CREATE, bpf.LINK_DETACH, bpf.MAP_FREEZE,
                   bpf.BTF_LOAD, bpf.PROG_INFO, bpf.MAP_INFO, bpf.LINK_INFO, bpf.BTF_INFO):
        struct_name = layout.name if layout.name.startswith("bpf_") else "union bpf_attr"
        if struct_name.startswith("bpf_"):
            struct_name = "struct " + struct_name
        for fname, (off, _fmt) in layout.fields.items():
            if fname in _NEWER or f"{fname}@{layout.name}" in _NEWER:
                continue
            if layout.name == "bpf_link_info":
                cexpr = f"raw_tracepoint.{fname}" if fname.startswith("tp_") else fname
            else:
                cexpr = _C_NAMES.get(layout.name, lambda f: f)(fname)
            checks.append((f"{layout.name}.{fname}", struct_name, cexpr, off))
    src = ["#include <stdio.h>", "#include <stddef.h>", "#include <linux/bpf.h>",
           "#include <linux/perf_event.h>", "int main(void){"]
    for label, sname, cexpr, _ in checks:
        src.append(f'printf("{label} %zu\\n", offsetof({sname}, {cexpr}));')
    perf_fields = {k: v for k, v in perf.ATTR_FIELDS.items() if k != "flags"}  # the bit-field word
    for fname in perf_fields:
        cexpr = {"wakeup": "wakeup_events"}.get(fname, fname)
        src.append(f'printf("perf.{fname} %zu\\n", offsetof(struct perf_event_attr, {cexpr}));')
    src.append('printf("ioc.id %lu\\nioc.set_bpf %lu\\nioc.enable %lu\\n", (unsigned long)PERF_EVENT_IOC_ID,'
               ' (unsigned long)PERF_EVENT_IOC_SET_BPF, (unsigned long)PERF_EVENT_IOC_ENABLE);')
    src.append("return 0;}")
    (tmp_path / "o.c").write_text("\n".join(src))
    subprocess.run(["clang-19", "-o", str(tmp_path / "o"), str(tmp_path / "o.c")], check=True)
    out = dict(line.rsplit(" ", 1) for line in subprocess.run(
        [str(tmp_path / "o")], check=True, capture_output=True, text=True).stdout.splitlines())
    for label, _, _, off in checks:
        assert int(out[label]) == off, label
    for fname, (off, _fmt) in perf_fields.items():
        assert int(out[f"perf.{fname}"]) == off, fname
    assert bpf.PROG_INFO.fields["gpl_compatible"][0] == int(out["bpf_prog_info.ifindex"]) + 4
    assert int(out["ioc.id"]) == perf.PERF_EVENT_IOC_ID
    assert int(out["ioc.set_bpf"]) == perf.PERF_EVENT_IOC_SET_BPF
    assert int(out["ioc.enable"]) == perf.PERF_EVENT_IOC_ENABLE


def test_layout_size_covers_last_set_field():
    _, size = bpf.MAP_CREATE.pack(map_type=1, key_size=4, value_size=4, max_entries=1)
    assert size == 16
    _, size = bpf.MAP_CREATE.pack(map_type=1, key_size=4, value_size=4, max_entries=1, map_name=b"x")
    assert size == 44
    buf, size = bpf.MAP_CREATE.pack(map_type=1, map_extra=7)
    assert size == 72 and struct.unpack_from("<Q", buf, 64)[0] == 7
    assert bytes(buf[16:64]) == bytes(48)


def test_obj_name_is_sanitised_and_truncated():
    assert bpf.obj_name("count-getpid:x") == b"count_getpid_x"
    assert len(bpf.obj_name("a" * 40)) == 15


def test_perf_attr_flags_and_shared_fields():
    buf = perf.pack_attr(perf.PerfType.SOFTWARE, perf.SwEvent.CPU_CLOCK, sample_freq=99, disabled=True,
                         precise_ip=2, wakeup_watermark=4096)
    assert len(buf) == perf.PERF_ATTR_SIZE
    typ, size, config, freq = struct.unpack_from("<IIQQ", buf, 0)
    assert (typ, size, config, freq) == (1, 128, 0, 99)
    flags = struct.unpack_from("<Q", buf, 40)[0]
    assert flags & 1 and flags & (1 << 10) and flags & (1 << 14)  # disabled, freq, watermark
    assert (flags >> 15) & 3 == 2
    assert struct.unpack_from("<I", buf, 48)[0] == 4096
    with pytest.raises(TypeError):
        perf.pack_attr(1, 0, no_such_flag=True)
    with pytest.raises(ValueError):
        perf.pack_attr(1, 0, sample_period=1, sample_freq=1)


def test_parse_cpu_list():
    assert perf.parse_cpu_list("0-3,5,7-8\n") == [0, 1, 2, 3, 5, 7, 8]
    assert perf.parse_cpu_list("0") == [0]
    assert perf.online_cpus() and set(perf.online_cpus()) <= set(perf.possible_cpus())


def test_bpf_error_text_and_pickle():
    exc = BPFError(errno.EACCES, "BPF_PROG_LOAD", log="0: (95) exit\nR0 !read_ok\n")
    assert isinstance(exc, OSError) and exc.errno == errno.EACCES
    text = str(exc)
    assert text.splitlines()[0] == "BPF_PROG_LOAD failed: Permission denied [EACCES]"
    assert "R0 !read_ok" in text
    again = pickle.loads(pickle.dumps(exc))
    assert (again.errno, again.command, again.log) == (exc.errno, exc.command, exc.log)
    assert "ENOTSUPP" in str(BPFError(524, "BPF_MAP_LOOKUP_ELEM"))


def test_fd_owner_semantics():
    before = open_fds()
    r, w = os.pipe()
    with FD(r) as fd:
        assert fd.fileno() == r and not fd.closed
    assert fd.closed
    fd.close()  # twice is fine
    with pytest.raises(ValueError):
        fd.fileno()
    owner = FD(w)
    n = owner.detach()
    assert owner.closed and n == w
    os.close(n)
    r2, w2 = os.pipe()
    FD(r2), FD(w2)  # dropped: __del__ closes them
    assert open_fds() == before
    with pytest.raises(ValueError):
        FD(-1)


# --------------------------------------------------------------------------
# the kernel



@pytest.mark.kernel
def test_map_commands_roundtrip():
    before = open_fds()
    with bpf.map_create(MapType.HASH, 4, 8, 8, name="sys_test") as fd:
        k, v = struct.pack("<I", 7), struct.pack("<Q", 99)
        bpf.map_update_elem(fd, k, v)
        assert bpf.map_lookup_elem(fd, k, 8) == v
        assert bpf.map_get_next_key(fd, None, 4) == k
        assert bpf.map_get_next_key(fd, k, 4) is None
        with pytest.raises(BPFError) as e:
            bpf.map_update_elem(fd, k, v, flags=1)  # BPF_NOEXIST
        assert e.value.errno == errno.EEXIST and e.value.command == "BPF_MAP_UPDATE_ELEM"
        assert bpf.map_lookup_and_delete_elem(fd, k, 8) == v
        with pytest.raises(BPFError) as e:
            bpf.map_lookup_elem(fd, k, 8)
        assert e.value.errno == errno.ENOENT
        info = bpf.map_info(fd)
        assert (info.type, info.key_size, info.value_size, info.max_entries, info.name) == (
            MapType.HASH, 4, 8, 8, "sys_test")
        ids = list(bpf.iter_ids(bpf.map_get_next_id))
        assert info.id in ids
        with bpf.map_get_fd_by_id(info.id) as again:
            assert bpf.map_info(again).id == info.id
        bpf.map_freeze(fd)
        with pytest.raises(BPFError) as e:
            bpf.map_update_elem(fd, k, v)
        assert e.value.errno == errno.EPERM
    assert open_fds() == before


@pytest.mark.kernel
def test_map_create_error_names_command():
    with pytest.raises(BPFError) as e:
        bpf.map_create(MapType.HASH, 0, 8, 8)  # hash maps need a key
    assert e.value.errno == errno.EINVAL
    assert e.value.command == "BPF_MAP_CREATE"


@pytest.mark.kernel
def test_batch_commands():
    with bpf.map_create(MapType.HASH, 4, 4, 64) as fd:
        keys = [struct.pack("<I", i) for i in range(40)]
        vals = [struct.pack("<I", i * 3) for i in range(40)]
        assert bpf.map_update_batch(fd, keys, vals) == 40
        got, token = {}, None
        while True:
            try:
                res = bpf.map_lookup_batch(fd, 4, 4, 7, token)
            except BPFError as exc:
                assert exc.errno == errno.ENOSPC
                continue
            got.update(zip(res.keys, res.values))
            if res.done:
                break
            token = res.token
        assert got == dict(zip(keys, vals))
        assert bpf.map_delete_batch(fd, keys[:10]) == 10
        res = bpf.map_lookup_and_delete_batch(fd, 4, 4, 64)
        assert res.done and sorted(res.keys) == sorted(keys[10:])
        assert bpf.map_get_next_key(fd, None, 4) is None


@pytest.mark.kernel
def test_prog_load_test_run_and_info():
    before = open_fds()
    fd, log = bpf.prog_load_with_log(ProgType.SOCKET_FILTER, ret(7), name="sys_ret7", log_level=2)
    with fd:
        assert "processed 2 insns" in log
        res = bpf.prog_test_run(fd, data_in=bytes(64), repeat=3)
        assert res.retval == 7 and len(res.data_out) == 64
        info = bpf.prog_info(fd)
        assert info.name == "sys_ret7" and info.type == ProgType.SOCKET_FILTER
        assert info.xlated == ret(7) and info.xlated_len == 16 and info.verified_insns == 2
        assert info.created_by_uid == os.geteuid() and info.gpl_compatible
        assert info.load_time > 0
    assert open_fds() == before


@pytest.mark.kernel
def test_prog_load_failure_retries_with_log():
    exit_only = struct.pack("<BBhi", 0x95, 0, 0, 0)
    with pytest.raises(BPFError) as e:
        bpf.prog_load(ProgType.SOCKET_FILTER, exit_only)
    assert e.value.command == "BPF_PROG_LOAD" and e.value.errno == errno.EACCES
    assert "R0 !read_ok" in e.value.log and "R0 !read_ok" in str(e.value)


@pytest.mark.kernel
def test_prog_load_log_grows_on_enospc():
    # A tiny first buffer must be grown until the whole log fits.
    movs = b"".join(struct.pack("<BBhi", 0xB7, 0, 0, i) for i in range(60))
    fd, log = bpf.prog_load_with_log(ProgType.SOCKET_FILTER, movs + ret(1), log_level=2, log_size=128)
    with fd:
        assert len(log) > 1000 and "r0 = 59" in log and "processed 62 insns" in log


@pytest.mark.kernel
def test_pin_and_get(tmp_path):
    with bpffs.temp_dir() as d, bpf.map_create(MapType.ARRAY, 4, 4, 1) as fd:
        path = os.path.join(d, "m")
        bpf.obj_pin(fd, path)
        with bpf.obj_get(path) as again:
            assert bpf.map_info(again).id == bpf.map_info(fd).id
        with pytest.raises(BPFError) as e:
            bpf.obj_get(os.path.join(d, "missing"))
        assert e.value.command == "BPF_OBJ_GET"
    assert not os.path.exists(d)


@pytest.mark.kernel
def test_raw_tracepoint_link_info():
    with bpf.prog_load(ProgType.RAW_TRACEPOINT, ret(0)) as prog:
        with bpf.raw_tracepoint_open("sys_enter", prog) as link:
            info = bpf.link_info(link)
            assert info.type == LinkType.RAW_TRACEPOINT
            assert info.prog_id == bpf.prog_info(prog).id
            assert info.tp_name == "sys_enter"
            assert info.id in list(bpf.iter_ids(bpf.link_get_next_id))
            with bpf.link_get_fd_by_id(info.id) as again:
                assert bpf.link_info(again).id == info.id


def _btf_blob(type_bytes, strings):
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(type_bytes), len(type_bytes), len(strings))
    return hdr + type_bytes + strings


@pytest.mark.kernel
def test_btf_load_and_log():
    int_type = struct.pack("<III", 1, 1 << 24, 4) + struct.pack("<I", (1 << 24) | 32)
    with bpf.btf_load(_btf_blob(int_type, b"\0int\0")) as fd:
        info = bpf.btf_info(fd)
        assert info.id > 0 and not info.kernel_btf
        assert info.id in list(bpf.iter_ids(bpf.btf_get_next_id))
    bad = struct.pack("<III", 1, 1 << 24, 4) + struct.pack("<I", (1 << 24) | 99)  # 99 bits in 4 bytes
    with pytest.raises(BPFError) as e:
        bpf.btf_load(_btf_blob(bad, b"\0int\0"))
    assert e.value.command == "BPF_BTF_LOAD" and e.value.log


@pytest.mark.kernel
def test_perf_event_open_and_ioctls():
    before = open_fds()
    with perf.perf_event_open(perf.PerfType.SOFTWARE, perf.SwEvent.TASK_CLOCK, pid=0, cpu=-1,
                              disabled=True) as ev:
        assert perf.event_id(ev) > 0
        perf.enable(ev)
        perf.disable(ev)
        perf.reset(ev)
    with pytest.raises(BPFError) as e:
        perf.perf_event_open(perf.PerfType.TRACEPOINT, 0xFFFFFFF, pid=-1, cpu=0)
    assert e.value.command == "perf_event_open"
    assert open_fds() == before


@pytest.mark.kernel
def test_enable_stats_counts_runs():
    with bpf.enable_stats() as stats, bpf.prog_load(ProgType.RAW_TRACEPOINT, ret(0)) as prog:
        assert stats.fileno() >= 0
        with bpf.raw_tracepoint_open("sys_enter", prog):
            for _ in range(20):
                os.getppid()
        assert bpf.prog_info(prog).run_cnt >= 20


@pytest.mark.kernel
def test_features_are_cached_booleans():
    for name in features.PROBES:
        ok = features.has(name)
        assert isinstance(ok, bool)
        assert (features.reason(name) == "") == ok
    assert features.has("bpf")
    assert features.has("btf") == os.path.exists("/sys/kernel/btf/vmlinux")
    assert features.has("kprobes") == os.path.exists("/sys/bus/event_source/devices/kprobe")
    assert features.has("uprobes") == os.path.exists("/sys/bus/event_source/devices/uprobe")
    with pytest.raises(KeyError):
        features.has("warp_drive")


@pytest.mark.kernel
@pytest.mark.btf
def test_vmlinux_func_id_agrees_with_bpftool():
    tid = features.vmlinux_func_id("bpf_fentry_test1")
    if shutil.which("bpftool") is None:
        assert tid and tid > 0
        return
    out = subprocess.run(["bpftool", "btf", "dump", "id", "1"], capture_output=True, text=True).stdout
    m = re.search(r"^\[(\d+)\] FUNC 'bpf_fentry_test1'", out, re.M)
    if m is None:
        pytest.skip("bpftool could not dump vmlinux BTF")
    assert tid == int(m.group(1))
