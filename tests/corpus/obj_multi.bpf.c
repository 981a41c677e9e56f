/* obj_multi: several programs in the same section (two xdp, two tc, two socket filters). */
#include "corpus.h"

__u64 counts[6];

SEC("xdp")
int multi_xdp_pass(struct xdp_md *ctx)
{
	counts[0]++;
	return XDP_PASS;
}

SEC("xdp")
int multi_xdp_drop(struct xdp_md *ctx)
{
	counts[1]++;
	return XDP_DROP;
}

SEC("tc")
int multi_tc_ok(struct __sk_buff *skb)
{
	counts[2] += skb->len;
	return TC_ACT_OK;
}

SEC("tc")
int multi_tc_shot(struct __sk_buff *skb)
{
	counts[3]++;
	return TC_ACT_SHOT;
}

SEC("socket")
int multi_sock_all(struct __sk_buff *skb)
{
	counts[4]++;
	return skb->len;
}

SEC("socket")
int multi_sock_none(struct __sk_buff *skb)
{
	counts[5]++;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
