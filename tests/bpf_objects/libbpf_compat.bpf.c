/* Test object: what libbpf fills in or forgives at load time.
 *  - a perf event array without max_entries (one slot per possible CPU) and a ring
 *    buffer whose size is not a power-of-two number of pages (rounded up);
 *  - libbpf's virtual kconfig externs (LINUX_KERNEL_VERSION, LINUX_HAS_BPF_COOKIE,
 *    LINUX_HAS_SYSCALL_WRAPPER), an unknown weak LINUX_ one, and CONFIG_ values;
 *  - CO-RE relocations the kernel cannot satisfy, guarded so their code is dead
 *    (poisoned instructions the verifier drops), and type relocations that read 0;
 *  - a ksyscall program (a kprobe on the syscall's kernel entry). */
#include "vmlinux.h"
#include "ebpfpy_bpf.h"

#define __kconfig __attribute__((section(".kconfig")))
#define __weak __attribute__((weak))

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 10000);
} odd_ring SEC(".maps");

enum libbpf_tristate { TRI_NO = 0, TRI_YES = 1, TRI_MODULE = 2 };

extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern _Bool LINUX_HAS_BPF_COOKIE __kconfig;
extern _Bool LINUX_HAS_SYSCALL_WRAPPER __kconfig;
extern int LINUX_EBPFPY_NOT_A_THING __kconfig __weak;
extern _Bool CONFIG_BPF_SYSCALL __kconfig;
extern char CONFIG_BPF __kconfig;  /* one byte: 'y' itself */
extern enum libbpf_tristate CONFIG_EBPFPY_SURELY_MISSING __kconfig __weak;

__u64 kcfg[7] = {};

SEC("socket")
int read_virtual_kconfig(void *ctx)
{
	kcfg[0] = LINUX_KERNEL_VERSION;
	kcfg[1] = LINUX_HAS_BPF_COOKIE;
	kcfg[2] = LINUX_HAS_SYSCALL_WRAPPER;
	kcfg[3] = LINUX_EBPFPY_NOT_A_THING;
	kcfg[4] = CONFIG_BPF_SYSCALL;
	kcfg[5] = CONFIG_BPF;
	kcfg[6] = CONFIG_EBPFPY_SURELY_MISSING;
	return 0;
}

struct task_struct___fake {
	int no_such_field_in_kernel;
} __attribute__((preserve_access_index));

struct ebpfpy_no_such_type {
	int x;
};

enum bpf_map_type___fake { BPF_MAP_TYPE_EBPFPY_FAKE = 1000 };

__u64 guarded[5] = {1, 1, 1, 1, 1};

SEC("raw_tp/sys_enter")
int guarded_core(void *ctx)
{
	struct task_struct___fake *t = (void *)bpf_get_current_task();
	__u64 v = 0;

	if (CORE_FIELD_EXISTS(t, no_such_field_in_kernel))
		v = CORE_READ(t, no_such_field_in_kernel);  /* poisoned, dead on this kernel */
	guarded[0] = v;
	guarded[1] = CORE_FIELD_EXISTS(t, no_such_field_in_kernel);
	guarded[2] = CORE_TYPE_SIZE(struct ebpfpy_no_such_type);
	guarded[3] = CORE_TYPE_EXISTS(struct ebpfpy_no_such_type);
	if (__builtin_preserve_enum_value(*(enum bpf_map_type___fake *)BPF_MAP_TYPE_EBPFPY_FAKE, 0))
		guarded[4] = CORE_ENUM_VALUE(enum bpf_map_type___fake, BPF_MAP_TYPE_EBPFPY_FAKE);  /* poisoned */
	else
		guarded[4] = 0;
	return 0;
}

SEC("ksyscall/getpid")
int on_getpid(struct pt_regs *regs)
{
	kcfg[0] += 0;
	return 0;
}
