"""ebpf_exporter's label decoders: the bytes of one key field -> the label's text.

A label's decoders run as a chain, as in ebpf_exporter: the first takes the field's bytes
(``size`` of them), each later one the text the one before produced (``string`` then
``regexp``, ``uint`` then ``static_map``). A decoder may also drop the whole label set
(``regexp`` without a match): ``decode_key`` returns None for that key.

Raw-bytes decoders (first in a chain): ``uint`` (1, 2, 4 or 8 bytes, host order, to decimal),
``string`` (up to the first NUL), ``hex``, ``ksym`` (a u64 kernel address to its symbol),
``kstack`` (u64 addresses up to the first 0, symbols joined by newlines), ``inet_ip`` (4 or
16 bytes), ``majorminor`` (a kernel dev_t, u32: major is the top 12 bits, to the name in
/proc/partitions), ``cgroup`` (a cgroup v2 id to its directory). Text decoders (after
``uint`` or ``string``): ``syscall``, ``errno``, ``ifname``, ``static_map``, ``regexp``,
``dname`` (DNS wire format), ``pci_vendor``, ``pci_device``, ``pci_class``,
``pci_subclass`` (names from the pci.ids file, where it is installed).

What each gives for a value it cannot name follows ebpf_exporter (``unknown_addr:0x...``,
``unknown_syscall:N``, ``unknown:M:m``, ``unknown:KEY``), so dashboards built on its
output keep working. Lookups that read the system (kallsyms, partitions, the cgroup tree)
are cached per value.
"""
from __future__ import annotations

import errno as _errno
import ipaddress
import os
import re
import socket
import sys

PCI_IDS = ("/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids", "/usr/share/pci.ids")
_PCI = ("pci_vendor", "pci_device", "pci_class", "pci_subclass")
KNOWN = ("uint", "string", "hex", "ksym", "kstack", "inet_ip", "majorminor", "cgroup", "syscall", "errno",
         "ifname", "static_map", "regexp", "dname", *_PCI)
# ebpf_exporter decoders that need what ebpfpy does not have
UNSUPPORTED = {
    "kube_container_name": "needs a Kubernetes container runtime client",
    "kube_pod_name": "needs a Kubernetes container runtime client",
    "kube_pod_namespace": "needs a Kubernetes container runtime client",
    "kubecontext": "needs a Kubernetes container runtime client",
    "lbr": "needs last-branch-record perf sampling",
}


class SkipLabelSet(Exception):
    """This key's label set is not exported (a regexp decoder found no match)."""


class DecodeError(Exception):
    """A field the decoder cannot read (a uint of 3 bytes, an inet_ip of 5)."""


def check_decoder(decoder, size: int) -> str | None:
    """Why a decoder from a config cannot be used, or None."""
    name = decoder.name
    if name in UNSUPPORTED:
        return f"decoder {name!r} is not supported by ebpfpy ({UNSUPPORTED[name]})"
    if name not in KNOWN:
        return f"unknown decoder {name!r} (known: {', '.join(KNOWN)})"
    if name == "regexp":
        if not decoder.regexps:
            return "the regexp decoder needs a list of regexps"
        for pattern in decoder.regexps:
            try:
                re.compile(pattern)
            except re.error as err:
                return f"regexp {pattern!r}: {err}"
    if name == "static_map" and not decoder.static_map and not decoder.allow_unknown:
        return "the static_map decoder needs a static_map"
    if name in _PCI and pci_ids_path() is None:
        return f"decoder {name!r} needs the pci.ids database ({' or '.join(PCI_IDS)}; Debian package pci.ids)"
    return None


def pci_ids_path() -> str | None:
    return next((p for p in PCI_IDS if os.path.exists(p)), None)


def _number(data: bytes, what: str) -> int:
    try:
        return int(data.decode(), 0)
    except (UnicodeDecodeError, ValueError):
        raise DecodeError(f"{what}: {data!r} is not a number (put a uint decoder before it)") from None


class Decoders:
    """All decoders, with their caches; ``decode_key`` turns a map key into label values."""

    def __init__(self, kernel_symbols=None, partitions: str = "/proc/partitions", cgroup_root: str | None = None):
        self._ksyms = kernel_symbols
        self._partitions = partitions
        self._cgroup_root = cgroup_root
        self._cgroups: dict[int, str] = {}
        self._pci: dict | None = None
        self._syscalls: dict | None = None
        self._regexps: dict[tuple, list] = {}
        self._cache: dict[tuple, tuple | None] = {}

    # -- labels ----------------------------------------------------------------------------------

    def decode_key(self, key: bytes, labels, cache_name: str = "") -> tuple | None:
        """Label values for one key (None: skip it). The labels' sizes and paddings must add up
        to the key's size, as ebpf_exporter insists."""
        cached = self._cache.get((cache_name, key), False) if cache_name else False
        if cached is not False:
            return cached
        total = sum(label.size + label.padding for label in labels)
        if total != len(key):
            raise DecodeError(f"the key is {len(key)} bytes, but the labels' sizes add up to {total}")
        values, offset = [], 0
        try:
            for label in labels:
                values.append(self.decode(key[offset:offset + label.size], label.decoders))
                offset += label.size + label.padding
            result: tuple | None = tuple(values)
        except SkipLabelSet:
            result = None
        if cache_name:
            self._cache[(cache_name, key)] = result
        return result

    def decode(self, data: bytes, decoders) -> str:
        for decoder in decoders:
            data = getattr(self, "_" + decoder.name)(data, decoder)
        return data.decode("utf-8", "replace")

    # -- raw decoders ----------------------------------------------------------------------------

    def _uint(self, data: bytes, conf) -> bytes:
        if len(data) not in (1, 2, 4, 8):
            raise DecodeError(f"uint: a field of {len(data)} bytes (1, 2, 4 or 8 can be read)")
        return str(int.from_bytes(data, sys.byteorder)).encode()

    def _string(self, data: bytes, conf) -> bytes:
        return data.split(b"\0", 1)[0]

    def _hex(self, data: bytes, conf) -> bytes:
        return data.hex().encode()

    def _symbols(self):
        if self._ksyms is None:
            from ebpfpy.events.symbols import kernel_symbols

            self._ksyms = kernel_symbols()
        return self._ksyms

    def _ksym(self, data: bytes, conf) -> bytes:
        addr = int.from_bytes(data[:8].ljust(8, b"\0"), sys.byteorder)
        found = self._symbols().lookup(addr) if addr else None
        return (found[0] if found else f"unknown_addr:0x{addr:x}").encode()

    def _kstack(self, data: bytes, conf) -> bytes:
        frames = []
        for off in range(0, len(data) - 7, 8):
            addr = int.from_bytes(data[off:off + 8], sys.byteorder)
            if addr == 0:
                break
            found = self._symbols().lookup(addr)
            frames.append(found[0] if found else "??")
        return "\n".join(frames).encode()

    def _inet_ip(self, data: bytes, conf) -> bytes:
        if len(data) == 4:
            return str(ipaddress.IPv4Address(data)).encode()
        if len(data) == 16:
            addr = ipaddress.IPv6Address(data)
            return str(addr.ipv4_mapped or addr).encode()
        raise DecodeError(f"inet_ip: a field of {len(data)} bytes (4 or 16 can be read)")

    def _majorminor(self, data: bytes, conf) -> bytes:
        dev = int.from_bytes(data[:4].ljust(4, b"\0"), sys.byteorder)
        major, minor = dev >> 20, dev & 0xFFFFF  # the kernel's own dev_t (MKDEV), as BPF sees it
        try:
            with open(self._partitions) as f:
                for line in f:
                    fields = line.split()
                    if len(fields) == 4 and fields[0] == str(major) and fields[1] == str(minor):
                        return fields[3].encode()
        except OSError:
            pass
        return f"unknown:{major}:{minor}".encode()

    def _cgroup(self, data: bytes, conf) -> bytes:
        cgid = int.from_bytes(data[:8].ljust(8, b"\0"), sys.byteorder)
        if cgid not in self._cgroups:
            self._scan_cgroups()
        return self._cgroups.get(cgid, f"unknown_cgroup_id:{cgid}").encode()

    def _scan_cgroups(self) -> None:
        """cgroup v2 ids are the inode numbers of the cgroups' directories."""
        root = self._cgroup_root
        if root is None:
            from ebpfpy.bpffs import find_cgroup2

            root = self._cgroup_root = find_cgroup2() or ""
        if not root:
            return
        for path, _dirs, _files in os.walk(root):
            try:
                self._cgroups.setdefault(os.stat(path).st_ino, path)
            except OSError:
                continue

    # -- text decoders ---------------------------------------------------------------------------

    def _syscall(self, data: bytes, conf) -> bytes:
        number = _number(data, "syscall")
        if self._syscalls is None:
            from ebpfpy.attach.syscalls import syscall_numbers

            self._syscalls = {nr: name for name, nr in syscall_numbers().items()}
        return self._syscalls.get(number, f"unknown_syscall:{number}").encode()

    def _errno(self, data: bytes, conf) -> bytes:
        number = abs(_number(data, "errno"))
        return _errno.errorcode.get(number, f"unknown:{number}").encode()

    def _ifname(self, data: bytes, conf) -> bytes:
        index = _number(data, "ifname")
        try:
            return socket.if_indextoname(index).encode()
        except OSError:
            return f"unknown:{index}".encode()

    def _static_map(self, data: bytes, conf) -> bytes:
        text = data.decode("utf-8", "replace")
        if text in conf.static_map:
            return conf.static_map[text].encode()
        return data if conf.allow_unknown else f"unknown:{text}".encode()

    def _regexp(self, data: bytes, conf) -> bytes:
        patterns = self._regexps.get(conf.regexps)
        if patterns is None:
            patterns = self._regexps[conf.regexps] = [re.compile(p) for p in conf.regexps]
        text = data.decode("utf-8", "replace")
        if any(p.search(text) for p in patterns):
            return data
        raise SkipLabelSet

    def _dname(self, data: bytes, conf) -> bytes:
        """DNS wire format (length-prefixed labels, ending in 0) -> dotted name."""
        parts, i = [], 0
        while i < len(data) and data[i]:
            n = data[i]
            parts.append(data[i + 1:i + 1 + n])
            i += 1 + n
        return b".".join(parts)

    def _pci_table(self) -> dict:
        if self._pci is None:
            self._pci = parse_pci_ids(pci_ids_path())
        return self._pci

    def _pci_vendor(self, data: bytes, conf) -> bytes:
        vendor = _number(data, "pci_vendor")
        return self._pci_table()["vendors"].get(vendor, f"unknown pci vendor 0x{vendor:04x}").encode()

    def _pci_device(self, data: bytes, conf) -> bytes:
        both = _number(data, "pci_device")
        found = self._pci_table()["devices"].get((both >> 16, both & 0xFFFF))
        return (found or f"unknown pci device 0x{both:08x}").encode()

    def _pci_class(self, data: bytes, conf) -> bytes:
        cls = _number(data, "pci_class") & 0xFF
        return self._pci_table()["classes"].get(cls, f"unknown pci class 0x{cls:02x}").encode()

    def _pci_subclass(self, data: bytes, conf) -> bytes:
        both = _number(data, "pci_subclass") & 0xFFFF
        found = self._pci_table()["subclasses"].get((both >> 8, both & 0xFF))
        return (found or f"unknown pci subclass 0x{both:04x}").encode()


def parse_pci_ids(path: str | None) -> dict:
    """pci.ids: vendors (``8086  Intel``), their devices (one tab), classes (``C 02  Network``)
    and subclasses (one tab under a class)."""
    table: dict = {"vendors": {}, "devices": {}, "classes": {}, "subclasses": {}}
    if path is None:
        return table
    vendor = cls = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            if line.startswith("C "):
                code, _, name = line[2:].strip().partition(" ")
                cls = int(code, 16)
                vendor = None
                table["classes"][cls] = name.strip()
            elif not line.startswith("\t"):
                code, _, name = line.strip().partition(" ")
                try:
                    vendor = int(code, 16)
                except ValueError:
                    vendor = None
                    continue
                cls = None
                table["vendors"][vendor] = name.strip()
            elif not line.startswith("\t\t"):
                code, _, name = line.strip().partition(" ")
                try:
                    number = int(code, 16)
                except ValueError:
                    continue
                if vendor is not None:
                    table["devices"][(vendor, number)] = name.strip()
                elif cls is not None:
                    table["subclasses"][(cls, number)] = name.strip()
    return table
