"""The world the code generator compiles for: everything it reads from the system, in one object.

Codegen never opens a file or asks the kernel directly; it asks ``env.world``.
``SystemWorld`` answers from the running system (vmlinux BTF, kallsyms, ELF
files through ``attach.binary``, the attach providers, feature probes); a test
hands in another world (a BTF file, a fixed CPU list, its own probe targets)
and checks the instructions without root. Semantic analysis gets its own view
of the same system through ``semantic_bridge``.
"""
from __future__ import annotations

import os
from typing import Any, Protocol


class World(Protocol):
    def btf(self) -> Any:
        """The kernel's BTF (``ebpfpy.btf.BTF``); raises when there is none."""

    def btf_struct(self, type_name: str) -> int | None:
        """The BTF id of ``struct NAME``/``union NAME``, None when unknown."""

    def data_symbol(self, path: str, name: str) -> int | None:
        """The address of a data (object) symbol of an ELF file, for uaddr()."""

    def kernel_symbol(self, name: str) -> int | None:
        """A kernel symbol's address, for kaddr()."""

    def cgroup_id(self, path: str) -> int | None:
        """The id of the cgroup v2 directory at ``path``."""

    def possible_cpus(self) -> list[int]:
        """The CPU numbers the per-CPU event buffer needs a slot for."""

    def feature(self, name: str) -> str:
        """"" when the kernel has ``name`` (an ``ebpfpy.features`` name), else why not."""

    def provider(self, spec: str) -> tuple[Any, str]:
        """The provider of a probe spec (its ``expand`` gives the concrete targets, its
        ``context`` each target's program type and context layout) and the spec after its kind."""


class SystemWorld:
    """The running system, read lazily: a BEGIN-only script touches none of it but the CPU list."""

    def btf(self):
        from ebpfpy import btf

        return btf.vmlinux()

    def btf_struct(self, type_name: str) -> int | None:
        try:
            return self.btf().find_struct(type_name.split()[-1])
        except Exception:  # no BTF, or no such type
            return None

    def data_symbol(self, path: str, name: str) -> int | None:
        from ebpfpy.attach.binary import elf_image
        from ebpfpy.attach.errors import AttachError

        try:
            symbol = elf_image(path).data_symbols.get(name)
        except (AttachError, OSError):
            return None
        return symbol.vaddr if symbol is not None else None

    def kernel_symbol(self, name: str) -> int | None:
        from ebpfpy.events.symbols import kaddr

        try:
            return kaddr(name)
        except LookupError:
            return None

    def cgroup_id(self, path: str) -> int | None:
        try:
            return os.stat(path).st_ino  # a cgroup v2 directory's inode number is its id
        except OSError:
            return None

    def possible_cpus(self) -> list[int]:
        from ebpfpy.sys.perf import possible_cpus

        return possible_cpus()

    def feature(self, name: str) -> str:
        from ebpfpy import features

        return "" if features.has(name) else features.reason(name) or "not available"

    def provider(self, spec: str) -> tuple[Any, str]:
        from ebpfpy.attach.provider import split_probe

        return split_probe(spec)
