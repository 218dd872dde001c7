/* Test object: BPF trampoline programs by section name (fentry, fexit on the kernel's test
 * function bpf_fentry_test1, which BPF_PROG_TEST_RUN of an fentry program calls: (1) returns 2;
 * fmod_ret on security_file_open, allowed on every kernel: security_* functions need no error
 * injection list), and an LSM hook (file_open), each counting the calls of process target_tgid
 * (0: every process) in a global.
 * ebpfpy-vm: prebuild (tests/vm's runner builds it on the host: the guest has no clang) */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

const volatile int target_tgid = 0;
__u64 entry_hits = 0, exit_hits = 0, modret_hits = 0, lsm_hits = 0;
int entry_arg = 0, exit_ret = 0, modret_ret = 0;

static __always_inline int ours(void)
{
	return !target_tgid || (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("fentry/bpf_fentry_test1")
int BPF_PROG(on_test1, int a)
{
	if (ours()) {
		entry_hits++;
		entry_arg = a;
	}
	return 0;
}

SEC("fexit/bpf_fentry_test1")
int BPF_PROG(on_test1_exit, int a, int ret)
{
	if (ours()) {
		exit_hits++;
		exit_ret = ret;
	}
	return 0;
}

SEC("fmod_ret/security_file_open")
int BPF_PROG(on_modify, struct file *file, int ret)
{
	if (ours()) {
		modret_hits++;
		modret_ret = ret;  /* 0: the earlier fmod_ret programs (none) let the call happen */
	}
	return 0;  /* 0: the hook runs and the open goes on */
}

SEC("lsm/file_open")
int BPF_PROG(on_file_open, struct file *file)
{
	if (ours())
		lsm_hits++;
	return 0;
}
