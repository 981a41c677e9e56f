/* tail calls through a program array: a dispatcher and two targets. */
#include "corpus.h"

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} jump_table SEC(".maps");

SEC("xdp")
int tail_target_a(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("xdp")
int tail_target_b(struct xdp_md *ctx)
{
	return XDP_DROP;
}

SEC("xdp")
int tail_dispatch(struct xdp_md *ctx)
{
	__u32 len = ctx->data_end - ctx->data;

	bpf_tail_call(ctx, &jump_table, len & 1);
	bpf_tail_call(ctx, &jump_table, 3);
	return XDP_ABORTED;
}

char LICENSE[] SEC("license") = "GPL";
