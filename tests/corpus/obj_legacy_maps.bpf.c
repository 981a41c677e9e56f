/* obj_legacy_maps: maps defined the pre-BTF way, as struct bpf_map_def in a "maps" section.
 * libbpf 1.0+ refuses this section; corebpf still loads it (old objects in the wild use it). */
#include "corpus.h"

struct legacy_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct legacy_map_def legacy_counts SEC("maps") = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 4,
};

struct legacy_map_def legacy_flows SEC("maps") = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 128,
	.map_flags = BPF_F_NO_PREALLOC,
};

SEC("socket")
int legacy_count(struct __sk_buff *skb)
{
	__u32 key = 1, proto = skb->protocol;
	__u64 *v, one = 1;

	v = bpf_map_lookup_elem(&legacy_counts, &key);
	if (v)
		__sync_fetch_and_add(v, 1);
	if (!bpf_map_lookup_elem(&legacy_flows, &proto))
		bpf_map_update_elem(&legacy_flows, &proto, &one, BPF_ANY);
	return skb->len;
}

char LICENSE[] SEC("license") = "GPL";
