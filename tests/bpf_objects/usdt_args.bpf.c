/* Test object: USDT programs written with libbpf's usdt.bpf.h (BPF_USDT, bpf_usdt_arg,
 * bpf_usdt_arg_cnt, bpf_usdt_cookie).  The arguments come from the spec maps the loader
 * fills at attach time; tests/progs/usdt_target.c fires the probes:
 *   hit(i, -i as short, i * 1000000007 as long), konst(5), idx(arr[i % 4]).
 * TARGET (-DTARGET="/path/to/usdt_target") names the binary of the auto-attached program. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

#ifndef TARGET
#define TARGET "/nonexistent/usdt_target"
#endif

char LICENSE[] SEC("license") = "GPL";

struct hit {
	int i;
	short neg;
	long big;
	int argc;
	int err;  /* bpf_usdt_arg() of an argument the probe does not have: -ENOENT */
};

enum ebpfpy_usdt_state { USDT_IDLE, USDT_SEEN };

struct hit hits[10];  /* by i: each call leaves its exact values */
long konst_sum;
long konst_cookie;
int konst_calls;
long idx_sum;
int idx_calls;
enum ebpfpy_usdt_state last_state;
const volatile int only_i = 0;  /* set before load: record only this i (0: all) */

SEC("usdt/" TARGET ":ebpfpy_test:hit")
int BPF_USDT(on_hit, int i, short neg, long big)
{
	unsigned int k = i;
	struct hit *h;
	long missing;

	if (only_i && i != only_i)
		return 0;
	if (k >= 10)
		return 0;
	h = &hits[k];
	h->i = i;
	h->neg = neg;
	h->big = big;
	h->argc = bpf_usdt_arg_cnt(ctx);
	h->err = bpf_usdt_arg(ctx, 3, &missing);
	last_state = USDT_SEEN;
	return 0;
}

SEC("usdt")
int BPF_USDT(on_konst, long k)
{
	__sync_fetch_and_add(&konst_sum, k);
	__sync_fetch_and_add(&konst_calls, 1);
	konst_cookie = bpf_usdt_cookie(ctx);
	return 0;
}

SEC("usdt")
int BPF_USDT(on_idx, long v)
{
	__sync_fetch_and_add(&idx_sum, v);
	__sync_fetch_and_add(&idx_calls, 1);
	return 0;
}
