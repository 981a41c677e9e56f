/* tc classifier: read packet bytes with a helper, mark and classify by the first byte. */
#include "corpus.h"

SEC("tc")
int tc_mark(struct __sk_buff *skb)
{
	__u8 first[4];

	if (bpf_skb_load_bytes(skb, 0, first, sizeof(first)) < 0)
		return TC_ACT_OK;
	skb->mark = first[0] | (skb->len << 8);
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		skb->tc_classid = 0x10001;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
