/* core_arrays: array elements (comm[i], arrays of structs such as signal->rlim[]), members inside
 * anonymous unions/structs of struct sk_buff, array-element sizes, in tp_btf and raw_tp. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

struct skb_facts {
	__u32 len;
	__u32 ifindex;
	__u64 tstamp;
	__u32 cb3;
	__u32 cb_size;
	__u32 rlim_size;
	char devname[16];
};

struct skb_facts skb_seen;
__u64 nofile_cur;
char comm2;

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(skb_btf, struct sk_buff *skb)
{
	skb_seen.len = skb->len;
	skb_seen.tstamp = skb->tstamp;
	skb_seen.cb3 = skb->cb[3];
	skb_seen.cb_size = bpf_core_field_size(skb->cb);
	skb_seen.ifindex = BPF_CORE_READ(skb, dev, ifindex);
	BPF_CORE_READ_STR_INTO(&skb_seen.devname, skb, dev, name);
	return 0;
}

SEC("raw_tp/sched_process_exit")
int rlim_raw(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();

	nofile_cur = BPF_CORE_READ(t, signal, rlim[7].rlim_cur);
	skb_seen.rlim_size = bpf_core_field_size(t->signal->rlim[7]);
	comm2 = BPF_CORE_READ(t, comm[2]);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
