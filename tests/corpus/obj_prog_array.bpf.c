/* obj_prog_array: a prog array filled by a static initialiser, and tail calls through it. */
#include "corpus.h"

__u32 hits[4];

SEC("xdp")
int pa_first(struct xdp_md *ctx)
{
	hits[1] += 1;
	return XDP_PASS;
}

SEC("xdp")
int pa_second(struct xdp_md *ctx)
{
	hits[2] += 1;
	return XDP_DROP;
}

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, int (void *));
} pa_table SEC(".maps") = {
	.values = { [0] = (void *)&pa_first, [3] = (void *)&pa_second },
};

const volatile __u32 pa_slot = 0;

SEC("xdp")
int pa_entry(struct xdp_md *ctx)
{
	hits[0] += 1;
	bpf_tail_call(ctx, &pa_table, pa_slot);
	return XDP_ABORTED;
}

char LICENSE[] SEC("license") = "GPL";
