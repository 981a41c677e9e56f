/* obj_map_in_map: array-of-maps and hash-of-maps with static initialisers (.values = {...}). */
#include "corpus.h"

struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
};

struct inner inner_a SEC(".maps");
struct inner inner_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 3);
	__type(key, __u32);
	__array(values, struct inner);
} outer_array SEC(".maps") = {
	.values = { [0] = &inner_a, [2] = &inner_b },
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 8);
	__type(key, __u32);
	__array(values, struct inner);
} outer_hash SEC(".maps") = {
	.values = { [5] = &inner_b },
};

SEC("xdp")
int mim_lookup(struct xdp_md *ctx)
{
	__u32 outer_key = 0, inner_key = 1;
	__u64 *v;
	void *m;

	m = bpf_map_lookup_elem(&outer_array, &outer_key);
	if (m) {
		v = bpf_map_lookup_elem(m, &inner_key);
		if (v)
			*v += 1;
	}
	outer_key = 5;
	m = bpf_map_lookup_elem(&outer_hash, &outer_key);
	if (m) {
		v = bpf_map_lookup_elem(m, &inner_key);
		if (v)
			*v += 10;
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
