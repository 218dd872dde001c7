"""ebpfpy: eBPF for Linux from pure Python (no BCC, no LLVM at run time).

Layers, bottom up, each usable alone: ``ebpfpy.isa`` (instructions),
``ebpfpy.codegen`` (verifier-friendly code), ``ebpfpy.sys`` (syscalls),
``ebpfpy.maps``/``ebpfpy.progs``/``ebpfpy.links``/``ebpfpy.btf``/``ebpfpy.elf``
(loader), ``ebpfpy.attach``/``ebpfpy.events`` (probes and event readers),
and the front ends ``ebpfpy.bpftrace`` and ``ebpfpy.cli``.

Nothing is imported eagerly here: start-up time of the CLIs matters.
"""
__version__ = "0.1.0"


def __getattr__(name):
    # `ebpfpy.load_object(path)` without importing the ELF loader at package import.
    if name == "load_object":
        from ebpfpy.elf import load_object

        return load_object
    raise AttributeError(f"module 'ebpfpy' has no attribute {name!r}")
