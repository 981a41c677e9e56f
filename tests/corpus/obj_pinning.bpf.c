/* obj_pinning: a map pinned by name (LIBBPF_PIN_BY_NAME) and reused by the next load. */
#include "corpus.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} corebpf_pinned_counts SEC(".maps");

SEC("socket")
int pin_count(struct __sk_buff *skb)
{
	__u32 key = skb->protocol;
	__u64 one = 1, *v;

	v = bpf_map_lookup_elem(&corebpf_pinned_counts, &key);
	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(&corebpf_pinned_counts, &key, &one, BPF_NOEXIST);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
