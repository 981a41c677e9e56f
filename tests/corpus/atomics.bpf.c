/* atomics: add/or/and/xor with and without fetch, xchg and cmpxchg on 32 and 64-bit globals. */
#include "corpus.h"

__u64 counter64 = 0;
__u32 counter32 = 0;
__u64 flags64 = 0;
__u64 last = 0;
__u64 results[8] = {};

SEC("xdp")
int atomic_ops(struct xdp_md *ctx)
{
	__u64 len = ctx->data_end - ctx->data;

	__sync_fetch_and_add(&counter64, len);
	__sync_fetch_and_add(&counter32, 1);
	__sync_fetch_and_or(&flags64, 1);
	__sync_fetch_and_and(&flags64, ~2ULL);
	__sync_fetch_and_xor(&flags64, 4);
	results[0] = __sync_fetch_and_add(&counter64, 1);
	results[1] = __sync_fetch_and_or(&flags64, 8);
	results[2] = __sync_fetch_and_and(&flags64, ~16ULL);
	results[3] = __sync_fetch_and_xor(&flags64, 32);
	results[4] = __sync_lock_test_and_set(&last, len);
	results[5] = __sync_val_compare_and_swap(&last, len, len + 1);
	results[6] = __sync_fetch_and_add(&counter32, 2);
	results[7] = __sync_val_compare_and_swap(&counter32, 5, 6);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
