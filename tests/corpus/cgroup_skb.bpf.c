/* cgroup_skb: count egress packets and bytes in global variables with atomic adds. */
#include "corpus.h"

__u64 packets = 0;          /* .bss */
__u64 bytes = 0;            /* .bss */
__u32 allow = 1;            /* .data */

SEC("cgroup_skb/egress")
int egress_count(struct __sk_buff *skb)
{
	__sync_fetch_and_add(&packets, 1);
	__sync_fetch_and_add(&bytes, skb->len);
	return allow & 1;
}

char LICENSE[] SEC("license") = "GPL";
