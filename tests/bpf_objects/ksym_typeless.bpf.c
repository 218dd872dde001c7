/* Test object: typeless __ksym externs (__start_BTF: one of the few data symbols in kallsyms
 * without CONFIG_KALLSYMS_ALL) (extern const void x __ksym): libbpf loads each one's
 * /proc/kallsyms address as a 64-bit constant; a weak one the kernel lacks reads 0. */
#include "vmlinux.h"
#include "ebpfpy_bpf.h"

#define __ksym __attribute__((section(".ksyms")))
#define __weak __attribute__((weak))

char LICENSE[] SEC("license") = "GPL";

extern const void __start_BTF __ksym;
extern const void ebpfpy_no_such_symbol __ksym __weak;

__u64 addrs[2];

SEC("socket")
int read_addrs(void *ctx)
{
	addrs[0] = (__u64)&__start_BTF;
	addrs[1] = (__u64)&ebpfpy_no_such_symbol;
	return 0;
}
