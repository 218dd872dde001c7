"""Reading what programs send to user space, and naming the addresses in it.

``perfbuf`` (BPF_MAP_TYPE_PERF_EVENT_ARRAY rings), ``ringbuf``
(BPF_MAP_TYPE_RINGBUF), ``stacks`` (stack trace maps, bpftrace's stack
text) and ``symbols`` (kallsyms, ELF symbols of processes). Nothing is
imported here: the CLIs import only what a script uses.
"""
