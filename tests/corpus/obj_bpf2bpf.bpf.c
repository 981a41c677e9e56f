/* obj_bpf2bpf: .text subprograms shared by programs of different sections (xdp, tc, socket),
 * nested static calls, a global (separately verified) function and a bpf_loop callback. */
#include "corpus.h"

__u64 results[4];

static __noinline __u32 fold(__u32 a, __u32 b)
{
	return (a * 31) ^ b;
}

static __noinline __u32 weigh(__u32 len)
{
	return fold(len, 7) + fold(len >> 1, 3);
}

__noinline int global_bucket(__u32 len)
{
	return len > 1000 ? 3 : weigh(len) & 1;
}

static int loop_step(__u32 index, void *data)
{
	__u64 *acc = data;

	*acc += fold(index, 1);
	return 0;
}

SEC("xdp")
int b2b_xdp(struct xdp_md *ctx)
{
	__u32 len = ctx->data_end - ctx->data;
	__u64 acc = 0;

	bpf_loop(4, loop_step, &acc, 0);
	results[0] = weigh(len) + acc;
	return global_bucket(len) == 3 ? XDP_DROP : XDP_PASS;
}

SEC("tc")
int b2b_tc(struct __sk_buff *skb)
{
	results[1] = fold(skb->len, skb->protocol);
	return TC_ACT_OK;
}

SEC("socket")
int b2b_sock(struct __sk_buff *skb)
{
	results[2] = global_bucket(skb->len);
	return skb->len;
}

char LICENSE[] SEC("license") = "GPL";
