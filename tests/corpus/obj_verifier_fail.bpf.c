/* obj_verifier_fail: maps and a good program, then a program the verifier rejects (it reads a map
 * value without the NULL check). Loading must fail and leave nothing behind. */
#include "corpus.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} vf_values SEC(".maps");

__u64 vf_seen;

SEC("socket")
int vf_good(struct __sk_buff *skb)
{
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(&vf_values, &key);

	if (v)
		vf_seen = *v;
	return 0;
}

SEC("socket")
int vf_bad(struct __sk_buff *skb)
{
	__u32 key = 1;
	__u64 *v = bpf_map_lookup_elem(&vf_values, &key);

	return *v; /* no NULL check: rejected */
}

char LICENSE[] SEC("license") = "GPL";
