/* Test object: kconfig externs (kernel version, bool, tristate, int, string, a weak missing one). */
#include "vmlinux.h"
#include "ebpfpy_bpf.h"

#define __kconfig __attribute__((section(".kconfig")))
#define __weak __attribute__((weak))

enum libbpf_tristate { TRI_NO = 0, TRI_YES = 1, TRI_MODULE = 2 };

extern int LINUX_KERNEL_VERSION __kconfig;
extern _Bool CONFIG_BPF_SYSCALL __kconfig;
extern enum libbpf_tristate CONFIG_BPF_JIT __kconfig;
extern int CONFIG_HZ __kconfig;
extern char CONFIG_LOCALVERSION[16] __kconfig;
extern int CONFIG_EBPFPY_SURELY_MISSING __kconfig __weak;

char LICENSE[] SEC("license") = "GPL";

__u64 out[6] = {};
char localversion[16] = {};

SEC("socket")
int read_kconfig(void *ctx)
{
	out[0] = LINUX_KERNEL_VERSION;
	out[1] = CONFIG_BPF_SYSCALL;
	out[2] = CONFIG_BPF_JIT;
	out[3] = CONFIG_HZ;
	out[4] = CONFIG_EBPFPY_SURELY_MISSING;
	out[5] = 42;
	__builtin_memcpy(localversion, CONFIG_LOCALVERSION, 16);
	return 0;
}
