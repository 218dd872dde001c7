/* Test object: a strong kconfig extern the kernel does not define (libbpf refuses to load it). */
#include "vmlinux.h"
#include "ebpfpy_bpf.h"

#define __kconfig __attribute__((section(".kconfig")))

char LICENSE[] SEC("license") = "GPL";

extern int CONFIG_EBPFPY_SURELY_MISSING __kconfig;

__u64 out = 0;

SEC("socket")
int read_missing_kconfig(void *ctx)
{
	out = CONFIG_EBPFPY_SURELY_MISSING;
	return 0;
}
