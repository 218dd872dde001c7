/* Instruction forms C code rarely produces, spelled in inline assembly so clang's assembler
 * encodes them: signed division, sign-extending moves, byte swaps, every jump condition in
 * both widths, gotol, legacy packet loads, atomics of both sizes, helper calls, 64-bit
 * immediates, and the post-RFC 9669 may_goto, callx and addr_space_cast.
 * Never loaded: it only has to assemble. */
#define SEC(name) __attribute__((section(name), used))

SEC("socket")
int alu_forms(void *ctx)
{
	asm volatile(
		"r1 = 0x7\n"
		"w2 = -0x3\n"
		"r1 s/= r2\n"
		"w1 s/= w2\n"
		"r1 s%%= -0x5\n"
		"w1 s%%= 0x3\n"
		"r1 /= r2\n"
		"w1 %%= 0x7\n"
		"r3 = (s8)r1\n"
		"r3 = (s16)r1\n"
		"r3 = (s32)r1\n"
		"w3 = (s8)w1\n"
		"w3 = (s16)w1\n"
		"r1 = -r1\n"
		"w1 = -w1\n"
		"r1 = le16 r1\n"
		"r1 = le32 r1\n"
		"r1 = le64 r1\n"
		"r1 = be16 r1\n"
		"r1 = be32 r1\n"
		"r1 = be64 r1\n"
		"r1 = bswap16 r1\n"
		"r1 = bswap32 r1\n"
		"r1 = bswap64 r1\n"
		"r1 s>>= 0x3\n"
		"w1 s>>= w2\n"
		"r1 <<= r2\n"
		"w1 >>= 0x1f\n"
		"r1 ^= 0x7fffffff\n"
		"w1 &= -0x80000000\n"
		"r1 |= r2\n"
		"r4 = 0x123456789abcdef0 ll\n"
		"r4 = -0x1 ll\n"
		"r4 = 0x0 ll\n"
		"w4 = w1\n"
		"r4 = r10\n"
		"r4 = addr_space_cast(r1, 0x0, 0x1)\n"
		"r4 = addr_space_cast(r1, 0x1, 0x0)\n"
		::: "r1", "r2", "r3", "r4");
	return 0;
}

SEC("socket")
int jump_forms(void *ctx)
{
	asm volatile(
		"r1 = 0x1\n"
		"r2 = 0x2\n"
		"if r1 == r2 goto +0x1\n"
		"if r1 != 0x3 goto +0x1\n"
		"if r1 > r2 goto +0x1\n"
		"if r1 >= 0x3 goto +0x1\n"
		"if r1 < r2 goto +0x1\n"
		"if r1 <= 0x3 goto +0x1\n"
		"if r1 s> r2 goto +0x1\n"
		"if r1 s>= -0x3 goto +0x1\n"
		"if r1 s< r2 goto +0x1\n"
		"if r1 s<= -0x3 goto +0x1\n"
		"if r1 & r2 goto +0x1\n"
		"if r1 & 0x40 goto +0x1\n"
		"if w1 == w2 goto +0x1\n"
		"if w1 != 0x3 goto +0x1\n"
		"if w1 > w2 goto +0x1\n"
		"if w1 >= 0x3 goto +0x1\n"
		"if w1 < w2 goto +0x1\n"
		"if w1 <= 0x3 goto +0x1\n"
		"if w1 s> w2 goto +0x1\n"
		"if w1 s>= -0x3 goto +0x1\n"
		"if w1 s< w2 goto +0x1\n"
		"if w1 s<= -0x3 goto +0x1\n"
		"if w1 & w2 goto +0x1\n"
		"if w1 & 0x40 goto -0x2\n"
		"goto +0x0\n"
		"gotol +0x1\n"
		"gotol -0x3\n"
		"call 0x5\n"
		"may_goto +0x1\n"
		"callx r3\n"
		::: "r0", "r1", "r2", "r3", "r4", "r5");
	return 0;
}

SEC("socket")
int memory_forms(void *ctx)
{
	asm volatile(
		"r1 = r10\n"
		"r1 += -0x40\n"
		"*(u8 *)(r1 + 0x0) = 0x1\n"
		"*(u16 *)(r1 + 0x2) = -0x2\n"
		"*(u32 *)(r1 + 0x4) = 0x3\n"
		"*(u64 *)(r1 + 0x8) = -0x4\n"
		"*(u8 *)(r1 + 0x10) = r1\n"
		"*(u16 *)(r1 + 0x12) = r1\n"
		"*(u32 *)(r1 + 0x14) = r1\n"
		"*(u64 *)(r10 - 0x8) = r1\n"
		"r2 = *(u8 *)(r1 + 0x0)\n"
		"r2 = *(u16 *)(r1 + 0x2)\n"
		"r2 = *(u32 *)(r1 + 0x4)\n"
		"r2 = *(u64 *)(r1 + 0x8)\n"
		"r2 = *(s8 *)(r1 + 0x0)\n"
		"r2 = *(s16 *)(r1 + 0x2)\n"
		"r2 = *(s32 *)(r1 - 0x4)\n"
		"lock *(u64 *)(r1 + 0x8) += r2\n"
		"lock *(u64 *)(r1 + 0x8) |= r2\n"
		"lock *(u64 *)(r1 + 0x8) &= r2\n"
		"lock *(u64 *)(r1 + 0x8) ^= r2\n"
		"r2 = atomic_fetch_add((u64 *)(r1 + 0x8), r2)\n"
		"r2 = atomic_fetch_or((u64 *)(r1 + 0x8), r2)\n"
		"r2 = atomic_fetch_and((u64 *)(r1 + 0x8), r2)\n"
		"r2 = atomic_fetch_xor((u64 *)(r1 + 0x8), r2)\n"
		"r2 = xchg_64(r1 + 0x8, r2)\n"
		"r0 = cmpxchg_64(r1 + 0x8, r0, r2)\n"
		"lock *(u32 *)(r1 + 0x4) += w2\n"
		"lock *(u32 *)(r1 + 0x4) |= w2\n"
		"lock *(u32 *)(r1 + 0x4) &= w2\n"
		"lock *(u32 *)(r1 + 0x4) ^= w2\n"
		"w2 = atomic_fetch_add((u32 *)(r1 + 0x4), w2)\n"
		"w2 = atomic_fetch_or((u32 *)(r1 + 0x4), w2)\n"
		"w2 = atomic_fetch_and((u32 *)(r1 + 0x4), w2)\n"
		"w2 = atomic_fetch_xor((u32 *)(r1 + 0x4), w2)\n"
		"w2 = xchg32_32(r1 + 0x4, w2)\n"
		"w0 = cmpxchg32_32(r1 + 0x4, w0, w2)\n"
		"r6 = r1\n"
		"r0 = *(u8 *)skb[0x17]\n"
		"r0 = *(u16 *)skb[0xc]\n"
		"r0 = *(u32 *)skb[0x1a]\n"
		"r0 = *(u8 *)skb[r2]\n"
		"r0 = *(u16 *)skb[r2]\n"
		"r0 = *(u32 *)skb[r2]\n"
		::: "r0", "r1", "r2", "r6", "memory");
	return 0;
}

/* Named labels become symbols: objdump starts a new block at each and names jump targets
 * after the nearest one (the last name, where two share an address). */
SEC("xdp")
int labels(void *ctx)
{
	asm volatile(
		"r0 = 0x0\n"
		"ebpfpy_loop:\n"
		"r0 += 0x1\n"
		"if r0 < 0x10 goto ebpfpy_loop\n"
		"goto ebpfpy_done\n"
		"ebpfpy_alias1:\n"
		"ebpfpy_alias2:\n"
		"r0 = 0x5\n"
		"ebpfpy_done:\n"
		::: "r0");
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
