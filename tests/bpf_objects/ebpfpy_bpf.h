/* Minimal BPF program helpers for ebpfpy's test objects (no libbpf headers needed).
 * Include after vmlinux.h. */
#ifndef EBPFPY_BPF_H
#define EBPFPY_BPF_H

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define __array(name, val) typeof(val) *name[]
#define __always_inline inline __attribute__((always_inline))
#define __noinline __attribute__((noinline))
#define NULL ((void *)0)

/* helper ids from include/uapi/linux/bpf.h */
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)2;
static long (*bpf_probe_read_kernel)(void *dst, __u32 size, const void *src) = (void *)113;
static __u64 (*bpf_get_current_pid_tgid)(void) = (void *)14;
static __u64 (*bpf_get_current_task)(void) = (void *)35;
static void *(*bpf_ringbuf_reserve)(void *ringbuf, __u64 size, __u64 flags) = (void *)131;
static void (*bpf_ringbuf_submit)(void *data, __u64 flags) = (void *)132;
static long (*bpf_get_current_comm)(void *buf, __u32 size_of_buf) = (void *)16;

/* CO-RE: read a field through preserve_access_index relocations. */
#define CORE_READ_INTO(dst, src, field) \
	bpf_probe_read_kernel((void *)(dst), sizeof(*(dst)), \
		(const void *)__builtin_preserve_access_index(&((typeof(src))(src))->field))

#define CORE_READ(src, field) ({ \
	typeof(((typeof(src))0)->field) __val; \
	CORE_READ_INTO(&__val, src, field); \
	__val; })

#define CORE_FIELD_EXISTS(src, field) \
	__builtin_preserve_field_info((src)->field, 2 /* BPF_FIELD_EXISTS */)
#define CORE_FIELD_SIZE(src, field) \
	__builtin_preserve_field_info((src)->field, 1 /* BPF_FIELD_BYTE_SIZE */)
#define CORE_TYPE_SIZE(type) \
	__builtin_preserve_type_info(*(typeof(type) *)0, 1 /* BPF_TYPE_SIZE */)
#define CORE_TYPE_EXISTS(type) \
	__builtin_preserve_type_info(*(typeof(type) *)0, 0 /* BPF_TYPE_EXISTS */)
#define CORE_ENUM_VALUE(enum_type, value) \
	__builtin_preserve_enum_value(*(typeof(enum_type) *)value, 1 /* BPF_ENUMVAL_VALUE */)

/* Does a weak __ksym extern exist in the running kernel? (libbpf resolves it to 0 if not) */
#define bpf_ksym_exists(sym) (!!(&(sym)))

/* Read a bitfield: byte offset/size, then shift left and (arithmetic or logical) right. */
#define CORE_READ_BITFIELD(s, field) ({ \
	unsigned long long __val = 0; \
	const void *__p = (const void *)(s) + __builtin_preserve_field_info((s)->field, 0); \
	switch (__builtin_preserve_field_info((s)->field, 1)) { \
	case 1: bpf_probe_read_kernel(&__val, 1, __p); break; \
	case 2: bpf_probe_read_kernel(&__val, 2, __p); break; \
	case 4: bpf_probe_read_kernel(&__val, 4, __p); break; \
	case 8: bpf_probe_read_kernel(&__val, 8, __p); break; \
	} \
	__val <<= __builtin_preserve_field_info((s)->field, 4); \
	if (__builtin_preserve_field_info((s)->field, 3)) \
		__val = ((long long)__val) >> __builtin_preserve_field_info((s)->field, 5); \
	else \
		__val = __val >> __builtin_preserve_field_info((s)->field, 5); \
	__val; })

#endif
