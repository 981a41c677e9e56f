/* obj_probes: kprobe/kretprobe, uprobe/uretprobe and sleepable uprobe.s (BPF_F_SLEEPABLE), and
 * perf_event-free tracing sections whose attach target is in the section name. */
#include "corpus.h"
#include <bpf/bpf_tracing.h>

__u64 probe_hits[5];

SEC("kprobe/do_unlinkat")
int probe_kprobe(void *ctx)
{
	probe_hits[0]++;
	return 0;
}

SEC("kretprobe/do_unlinkat")
int probe_kretprobe(void *ctx)
{
	probe_hits[1]++;
	return 0;
}

SEC("uprobe")
int probe_uprobe(void *ctx)
{
	probe_hits[2]++;
	return 0;
}

SEC("uretprobe")
int probe_uretprobe(void *ctx)
{
	probe_hits[3]++;
	return 0;
}

SEC("uprobe.s")
int probe_uprobe_sleepable(void *ctx)
{
	probe_hits[4]++;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
