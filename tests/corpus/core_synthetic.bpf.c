/* core_synthetic: CO-RE relocations on local types the kernel does not have (struct syn...), for the
 * differential test against libbpf with hand-built target BTFs (btf_custom_path). Everything is
 * guarded by bpf_core_type_exists(struct syn): against the running kernel it is dead code, so the
 * object still loads (every relocation poisoned or zero). */
#include "corpus.h"
#include <bpf/bpf_core_read.h>

enum syn_e {
	SYN_ONE = 1,
	SYN_TWO = 2,
	SYN_THREE = 3,
};

struct syn_inner {
	int x;
	int y;
} CORE;

struct syn {
	int a;
	int b;
	struct syn_inner in;
	int arr[4];
	unsigned int u;
	struct syn_inner *p;
	int m[2][3];
	unsigned int bf1:3;
	int bf2:5;
	unsigned int bf3:10;
	int sgn;
	enum syn_e e;
} CORE;

struct syn___v2 {
	int b;
	int gone;
} CORE;

struct syn_missing {
	int z;
};

__u64 out[40];

SEC("raw_tp/sys_enter")
int synthetic(struct bpf_raw_tracepoint_args *ctx)
{
	struct syn *s = (struct syn *)ctx->args[0];
	struct syn___v2 *v2 = (struct syn___v2 *)s;

	if (!bpf_core_type_exists(struct syn))
		return 0;
	out[0] = BPF_CORE_READ(s, a);
	out[1] = BPF_CORE_READ(s, b);
	out[2] = BPF_CORE_READ(s, in.x);
	out[3] = BPF_CORE_READ(s, in.y);
	out[4] = BPF_CORE_READ(s, arr[2]);
	out[5] = BPF_CORE_READ(s, m[1][2]);
	out[6] = BPF_CORE_READ(s, p, y);
	out[7] = bpf_core_field_exists(s->b);
	out[8] = bpf_core_field_exists(s->arr[3]);
	out[9] = bpf_core_field_size(s->in);
	out[10] = bpf_core_field_size(s->arr);
	out[11] = bpf_core_field_size(s->u);
	out[12] = __builtin_preserve_field_info(s->sgn, BPF_FIELD_SIGNED);
	out[13] = __builtin_preserve_field_info(s->e, BPF_FIELD_SIGNED);
	out[14] = BPF_CORE_READ_BITFIELD_PROBED(s, bf1);
	out[15] = BPF_CORE_READ_BITFIELD_PROBED(s, bf2);
	out[16] = BPF_CORE_READ_BITFIELD_PROBED(s, bf3);
	out[17] = s->u;          /* direct loads: the access size may have to change */
	out[18] = s->sgn;
	out[19] = BPF_CORE_READ(v2, b);
	if (bpf_core_field_exists(v2->gone))
		out[20] = BPF_CORE_READ(v2, gone);
	out[21] = bpf_core_enum_value(enum syn_e, SYN_TWO);
	out[22] = bpf_core_enum_value_exists(enum syn_e, SYN_THREE);
	if (bpf_core_enum_value_exists(enum syn_e, SYN_THREE))
		out[23] = bpf_core_enum_value(enum syn_e, SYN_THREE);
	out[24] = bpf_core_type_size(struct syn);
	out[25] = bpf_core_type_exists(struct syn_inner);
	out[26] = bpf_core_type_size(struct syn_inner);
	out[27] = bpf_core_type_exists(struct syn_missing);
	out[28] = bpf_core_type_id_kernel(struct syn);
	out[29] = bpf_core_type_exists(enum syn_e);
	out[30] = bpf_core_field_offset(s->e);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
