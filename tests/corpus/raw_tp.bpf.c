/* raw_tp: per-CPU counter of context switches, with the CPU id in a second slot. */
#include "corpus.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} switches SEC(".maps");

SEC("raw_tp/sched_switch")
int on_switch(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 key = 0;
	__u64 *val = bpf_map_lookup_elem(&switches, &key);

	if (!val)
		return 0;
	*val += 1;
	key = 1;
	val = bpf_map_lookup_elem(&switches, &key);
	if (val)
		*val = bpf_get_smp_processor_id();
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
