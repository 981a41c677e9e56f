/* loops: bpf_loop with a callback (a ld_imm64 of a function), and an unrolled byte-swap loop. */
#include "corpus.h"

struct loop_ctx {
	__u64 acc;
	__u32 limit;
};

__u64 loop_result = 0;
__u32 swapped[4] = {};
__u16 swapped16 = 0;

static int step(__u32 index, void *data)
{
	struct loop_ctx *c = data;

	c->acc = c->acc * 31 + index;
	return index >= c->limit;
}

SEC("xdp")
int loop_callback(struct xdp_md *ctx)
{
	struct loop_ctx c = { .acc = 7, .limit = 20 };
	int i;

	bpf_loop(100, step, &c, 0);
	loop_result = c.acc;
#pragma unroll
	for (i = 0; i < 4; i++)
		swapped[i] = __builtin_bswap32(swapped[i] + i);
	swapped16 = __builtin_bswap16(swapped16 + 1);
	loop_result ^= __builtin_bswap64(loop_result);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
