/* Plain C that clang -mcpu=v4 compiles to the newer instructions: signed division and
 * modulo, sign-extending loads and moves, byte swaps, 32-bit atomics with fetch, exchange
 * and compare-and-exchange, and the legacy packet loads through their LLVM builtins. */
#define SEC(name) __attribute__((section(name), used))

typedef unsigned long long u64;
typedef unsigned int u32;

unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");
unsigned long long load_word(void *skb, unsigned long long off) asm("llvm.bpf.load.word");

long shared64;
int shared32;

SEC("socket")
int signed_math(long *p)
{
	long a = p[0], b = p[1];
	int c = (int)p[2], d = (int)p[3];
	signed char e = *(signed char *)&p[4];
	short f = *(short *)&p[5];
	long r = a / b + a % b + c / d + c % d + e + f + (signed char)a + (short)c;
	r += (long)__builtin_bswap64(a) + __builtin_bswap32(c) + __builtin_bswap16(d);
	return r > 0 ? (int)(r >> 3) : -1;
}

SEC("socket")
int atomics(void *ctx)
{
	long r = __sync_fetch_and_add(&shared64, 2);
	r += __sync_fetch_and_or(&shared64, 4);
	r += __sync_fetch_and_and(&shared64, 6);
	r += __sync_fetch_and_xor(&shared64, 8);
	r += __sync_lock_test_and_set(&shared64, r);
	r += __sync_val_compare_and_swap(&shared64, r, 3);
	r += __sync_fetch_and_add(&shared32, 2);
	r += __sync_fetch_and_or(&shared32, 4);
	r += __sync_fetch_and_and(&shared32, 6);
	r += __sync_fetch_and_xor(&shared32, 8);
	r += __sync_lock_test_and_set(&shared32, (int)r);
	r += __sync_val_compare_and_swap(&shared32, (int)r, 3);
	__sync_fetch_and_add(&shared64, 1);
	__sync_fetch_and_or(&shared64, 1);
	__sync_fetch_and_add(&shared32, 1);
	__sync_fetch_and_xor(&shared32, 1);
	return (int)r;
}

SEC("socket")
int packet(void *skb)
{
	u64 proto = load_half(skb, 12);
	u64 ihl = load_byte(skb, 14) & 0xf;
	u64 word = load_word(skb, 14 + ihl * 4);
	if (proto != 0x0800)
		return 0;
	return (int)(word + load_byte(skb, ihl) + load_half(skb, ihl * 2));
}

char LICENSE[] SEC("license") = "GPL";
