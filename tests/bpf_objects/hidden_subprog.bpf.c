/* Test object: __weak __hidden and __hidden subprograms (as in libbpf's usdt.bpf.h).
 * libbpf gives them static BTF linkage, so the verifier checks them in the caller's
 * context: deref_strict() dereferences its argument without a NULL check, which a
 * global function (checked on its own) may not. */
#include "vmlinux.h"
#include "ebpfpy_bpf.h"

#define __weak __attribute__((weak))
#define __hidden __attribute__((visibility("hidden")))

char LICENSE[] SEC("license") = "GPL";

__weak __hidden __noinline int deref_weak(int *p)
{
	return p ? *p + 1 : 0;
}

__hidden __noinline int deref_strict(int *p)
{
	return *p + 2;
}

__noinline int checked_global(int *p)
{
	return p ? *p : 0;
}

SEC("socket")
int call_hidden(void *ctx)
{
	int x = 5;

	return deref_weak(&x) + deref_strict(&x) + checked_global(&x);
}
