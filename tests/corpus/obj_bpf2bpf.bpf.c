/* obj_bpf2bpf: .text subprograms shared by programs of different sections (xdp, tc, socket),
 * nested static calls, a global (separately verified) function and a bpf_loop callback.
 *
 * The callback has a program of its own (b2b_loop): a callback is referenced by a ld_imm64 of a
 * function (BPF_PSEUDO_FUNC, Linux 5.13; bpf_loop itself 5.17), which older verifiers do not count as
 * a subprogram, so they refuse the whole program ("number of funcs in func_info doesn't match number
 * of subprogs"). Kept apart, the plain bpf2bpf calls (4.16) of the other programs load on 5.10. */
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

	results[0] = weigh(len);
	return global_bucket(len) == 3 ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int b2b_loop(struct xdp_md *ctx)
{
	__u64 acc = 0;

	bpf_loop(4, loop_step, &acc, 0);
	results[3] = acc;
	return XDP_PASS;
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
