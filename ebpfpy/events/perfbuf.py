"""Reader for BPF_MAP_TYPE_PERF_EVENT_ARRAY output (``bpf_perf_event_output``).

Per online CPU one software perf event (PERF_COUNT_SW_BPF_OUTPUT, sample
type PERF_SAMPLE_RAW) is opened, its ring mmapped (one metadata page plus
2^n data pages) and its fd stored in the map at index cpu, which is where
``bpf_perf_event_output(ctx, map, BPF_F_CURRENT_CPU, ...)`` writes.

Reading a ring (``PerfRing``): ``data_head`` (metadata offset 1024) is the
kernel's write position and is only advanced once records are complete;
``data_tail`` (1032) is ours. Everything in between is copied out in at
most two slices (the region may wrap around the ring's end), ``data_tail``
is advanced at once so the kernel can reuse the space while we parse, and
records are then cut from that private copy with one precompiled
``struct`` unpack per record. Records may straddle the ring's end; the copy
makes them contiguous.

Delivered records are ``bytes`` of the PERF_SAMPLE_RAW payload. The kernel
pads a raw sample so that its u32 size plus data is a multiple of 8: a
program that outputs 24 bytes delivers 28 (the last 4 zero). Parse with a
fixed ``struct`` format and ignore the tail.

Records lost because a ring was full arrive as PERF_RECORD_LOST and are
summed in ``lost`` (and passed to ``lost_callback(cpu, count)``).
"""
from __future__ import annotations

import mmap
import select
import struct
from collections.abc import Callable, Iterable

from ebpfpy.sys import bpf, perf
from ebpfpy.sys.errors import BPFError
from ebpfpy.sys.fd import fd_number

__all__ = [
    "PERF_RECORD_LOST",
    "PERF_RECORD_SAMPLE",
    "PerfBuffer",
    "PerfRing",
]

PERF_RECORD_LOST = 2
PERF_RECORD_SAMPLE = 9

# struct perf_event_mmap_page: data_head, data_tail, data_offset, data_size.
_META = struct.Struct("<QQQQ")
_META_OFFSET = 1024
_HEAD = struct.Struct("<Q")
_TAIL_OFFSET = 1032
# perf_event_header (type, misc, size) + the u32 raw size of a SAMPLE.
_SAMPLE_HDR = struct.Struct("<IHHI")
_HDR = struct.Struct("<IHH")
# A LOST record: header, u64 id, u64 lost.
_LOST = struct.Struct("<8xQQ")
_U32 = struct.Struct("<I")

PAGE_SIZE = mmap.PAGESIZE

Callback = Callable[[int, list], None]
LostCallback = Callable[[int, int], None]


def parse_records(chunk: bytes) -> tuple[list[bytes], int, int]:
    """Split a contiguous run of perf records into (raw samples, lost count,
    number of records of other types)."""
    samples: list[bytes] = []
    append = samples.append
    unpack = _SAMPLE_HDR.unpack_from
    lost = other = 0
    pos = 0
    end = len(chunk)
    while pos + 8 <= end:
        if pos + 12 <= end:
            rtype, _misc, size, raw = unpack(chunk, pos)
        else:
            rtype, _misc, size = _HDR.unpack_from(chunk, pos)
        if size < 8:  # corrupt header: never loop forever on it
            break
        if rtype == PERF_RECORD_SAMPLE:
            append(chunk[pos + 12 : pos + 12 + raw])
        elif rtype == PERF_RECORD_LOST:
            lost += _LOST.unpack_from(chunk, pos)[1]
        else:
            other += 1
        pos += size
    return samples, lost, other


class PerfRing:
    """One perf ring over a writable buffer (an mmap, or a bytearray in
    tests) laid out as the kernel maps it: metadata page, then data."""

    def __init__(self, buf, *, page_size: int = PAGE_SIZE) -> None:
        self.buf = buf
        _, _, data_offset, data_size = _META.unpack_from(buf, _META_OFFSET)
        # Kernels before 4.1 left these zero: data starts at the 2nd page.
        self.data_offset = data_offset or page_size
        self.data_size = data_size or (len(buf) - self.data_offset)

    def read_chunk(self) -> bytes:
        """Copy out everything between data_tail and data_head and release it."""
        buf = self.buf
        head = _HEAD.unpack_from(buf, _META_OFFSET)[0]
        tail = _HEAD.unpack_from(buf, _TAIL_OFFSET)[0]
        if head == tail:
            return b""
        size = self.data_size
        base = self.data_offset
        start = tail % size
        stop = start + (head - tail)
        if stop <= size:
            chunk = buf[base + start : base + stop]
        else:
            chunk = buf[base + start : base + size] + buf[base : base + stop - size]
        _HEAD.pack_into(buf, _TAIL_OFFSET, head)
        return chunk

    def read(self) -> tuple[list[bytes], int]:
        """(raw samples, lost count) available now."""
        samples, lost, _ = parse_records(self.read_chunk())
        return samples, lost

    def pending(self) -> int:
        """Bytes written by the kernel and not yet read."""
        head = _HEAD.unpack_from(self.buf, _META_OFFSET)[0]
        return head - _HEAD.unpack_from(self.buf, _TAIL_OFFSET)[0]


def _set_map_fd(map_fd: int, index: int, fd: int) -> None:
    """Store a perf event fd at ``index`` of a PERF_EVENT_ARRAY map."""
    bpf.map_update_elem(map_fd, _U32.pack(index), _U32.pack(fd), 0)


def _clear_map_fd(map_fd, index: int) -> None:
    """Take our event out of the map: the map holds a reference to it until
    the map itself is closed, so closing our fd alone would not stop output."""
    try:
        bpf.map_delete_elem(map_fd, _U32.pack(index))
    except (BPFError, OSError, ValueError):
        pass  # the map was closed first: nothing left to clean


class PerfBuffer:
    """Per-CPU perf rings of a PERF_EVENT_ARRAY map, polled with one epoll.

    ``callback(cpu, records)`` receives a list of ``bytes`` per ring read, not
    one call per record: the per-call cost dominates at high rates.
    ``pages`` (a power of two) sizes each CPU's ring. By default the kernel
    wakes us per record (``wakeup_events=1``); with ``watermark=N`` it wakes
    us when N bytes are pending, far fewer wake-ups under load, but records
    below the watermark wait for the next ``poll`` or ``consume``.
    """

    def __init__(
        self,
        perf_map,
        callback: Callback,
        *,
        pages: int = 64,
        lost_callback: LostCallback | None = None,
        wakeup_events: int = 1,
        watermark: int = 0,
        cpus: Iterable[int] | None = None,
    ) -> None:
        if pages <= 0 or pages & (pages - 1):
            raise ValueError(f"pages must be a power of two, not {pages}")
        self._map_fd = fd_number(perf_map)
        self._cpus: list[int] = []
        self.callback = callback
        self.lost_callback = lost_callback
        self.lost = 0
        self._events: list = []
        self._maps: list[mmap.mmap] = []
        self._rings: dict[int, tuple[int, PerfRing]] = {}  # fd -> (cpu, ring)
        self._epoll = select.epoll()
        try:
            for cpu in perf.online_cpus() if cpus is None else cpus:
                ev = perf.perf_event_open(
                    perf.PerfType.SOFTWARE,
                    perf.SwEvent.BPF_OUTPUT,
                    pid=-1,
                    cpu=cpu,
                    sample_period=1,
                    sample_type=perf.SampleType.RAW,
                    wakeup_events=0 if watermark else wakeup_events,
                    wakeup_watermark=watermark,
                )
                self._events.append(ev)
                fd = fd_number(ev)
                mm = mmap.mmap(
                    fd, (1 + pages) * PAGE_SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
                )
                self._maps.append(mm)
                self._rings[fd] = (cpu, PerfRing(mm))
                _set_map_fd(self._map_fd, cpu, fd)
                self._cpus.append(cpu)
                perf.enable(fd)
                self._epoll.register(fd, select.EPOLLIN)
        except BaseException:
            self.close()
            raise

    def fileno(self) -> int:
        """The epoll fd: readable when any ring has data (nest it in your loop)."""
        return self._epoll.fileno()

    def _drain(self, fd: int) -> int:
        cpu, ring = self._rings[fd]
        samples, lost, _ = parse_records(ring.read_chunk())
        if lost:
            self.lost += lost
            if self.lost_callback is not None:
                self.lost_callback(cpu, lost)
        if samples:
            self.callback(cpu, samples)
        return len(samples)

    def poll(self, timeout_ms: int = -1) -> int:
        """Wait up to ``timeout_ms`` (-1: forever) and deliver what is ready;
        returns the number of records delivered."""
        ready = self._epoll.poll(-1 if timeout_ms < 0 else timeout_ms / 1000.0)
        rings = self._rings
        return sum(self._drain(fd) for fd, _ in ready if fd in rings)

    def watch(self, fd: int) -> None:
        """Also wake ``poll`` when ``fd`` is readable (e.g. a signal wake-up pipe).

        ``poll`` only returns early for it; reading the fd is the caller's job.
        """
        self._epoll.register(fd, select.EPOLLIN)

    def consume(self, first_cpu: int | None = None, last_cpu: int | None = None) -> int:
        """Deliver everything in every ring without waiting; ``first_cpu``'s ring before the
        others, ``last_cpu``'s after them (records are ordered within a ring only)."""
        fds = sorted(self._rings, key=lambda fd: (self._rings[fd][0] != first_cpu, self._rings[fd][0] == last_cpu))
        return sum(self._drain(fd) for fd in fds)

    def close(self) -> None:
        for cpu in self._cpus:
            _clear_map_fd(self._map_fd, cpu)
        self._epoll.close()
        for mm in self._maps:
            mm.close()
        for ev in self._events:
            ev.close()
        self._cpus, self._maps, self._events, self._rings = [], [], [], {}

    def __enter__(self) -> PerfBuffer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
