/* The C side of ebpfpy: only what Python cannot do by itself.
 * Every function returns -errno on failure instead of touching the
 * thread-local errno, so the Python side never races another thread. */
long ebpfpy_bpf(int cmd, void *attr, unsigned int size);
long ebpfpy_perf_event_open(void *attr, int pid, int cpu, int group_fd, unsigned long flags);
long ebpfpy_ioctl(int fd, unsigned long request, unsigned long arg);
/* Empty, never-inlined functions that uprobes can sit on: BEGIN and END
 * probes may attach here and fire when Python calls them. */
void ebpfpy_begin_trigger(void);
void ebpfpy_end_trigger(void);
