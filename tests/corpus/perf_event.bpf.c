/* perf_event: sample counter per CPU and per pid, reading the sample period from the context. */
#include "corpus.h"
#include <linux/bpf_perf_event.h>

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u64);
} samples SEC(".maps");

SEC("perf_event")
int on_sample(struct bpf_perf_event_data *ctx)
{
	__u64 key = (bpf_get_current_pid_tgid() & 0xffffffff) | ((__u64)bpf_get_smp_processor_id() << 32);
	__u64 period = ctx->sample_period;
	__u64 *val = bpf_map_lookup_elem(&samples, &key);

	if (val)
		*val += period;
	else
		bpf_map_update_elem(&samples, &key, &period, BPF_ANY);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
