/* bpf-to-bpf calls: static __noinline helpers and a global (separately verified) function. */
#include "corpus.h"

static __noinline __u64 mix(__u64 a, __u64 b)
{
	return (a ^ (b << 7)) * 0x9e3779b97f4a7c15ULL;
}

static __noinline int clamp(int v, int lo, int hi)
{
	if (v < lo)
		return lo;
	return v > hi ? hi : v;
}

__noinline int global_len(struct __sk_buff *skb)
{
	if (!skb)
		return 0;
	return clamp(skb->len, 0, 1500);
}

SEC("tc")
int subprog_calls(struct __sk_buff *skb)
{
	__u64 h = mix(skb->len, skb->protocol);

	h = mix(h, global_len(skb));
	skb->mark = (__u32)h;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
