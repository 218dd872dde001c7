/* Test object: kfunc calls through __ksym externs (BPF_PSEUDO_KFUNC_CALL by vmlinux BTF id). */
#include "vmlinux.h"
#include "ebpfpy_bpf.h"

#define __ksym __attribute__((section(".ksyms")))
#define __weak __attribute__((weak))

char LICENSE[] SEC("license") = "GPL";

extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;
extern struct task_struct *bpf_task_from_pid(s32 pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;
extern void ebpfpy_no_such_kfunc(void) __ksym __weak;

const volatile int target_tgid = 0;
const volatile int lookup_pid = 0;
__u64 res[3];

SEC("tracepoint/syscalls/sys_enter_getpid")
int use_kfuncs(void *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	bpf_rcu_read_lock();
	res[0]++;
	bpf_rcu_read_unlock();
	struct task_struct *t = bpf_task_from_pid(lookup_pid);
	if (t) {
		res[1] = t->tgid;
		bpf_task_release(t);
	}
	res[2] = bpf_ksym_exists(ebpfpy_no_such_kfunc) ? 1 : 2;
	return 0;
}
