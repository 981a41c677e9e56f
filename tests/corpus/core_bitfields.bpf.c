/* core_bitfields: BPF_CORE_READ_BITFIELD_PROBED (byte offset/size, lshift/rshift, signed through
 * bpf_probe_read) in raw_tp and BPF_CORE_READ_BITFIELD (direct load) in tp_btf. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

struct bits {
	__u64 in_execve;
	__u64 reset_on_fork;
	__u64 in_iowait;
	__u64 fork_class;
};

struct bits raw_bits;
struct bits btf_bits;

SEC("raw_tp/sched_switch")
int bits_raw(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *next = (struct task_struct *)ctx->args[2];

	raw_bits.in_execve = BPF_CORE_READ_BITFIELD_PROBED(next, in_execve);
	raw_bits.reset_on_fork = BPF_CORE_READ_BITFIELD_PROBED(next, sched_reset_on_fork);
	raw_bits.in_iowait = BPF_CORE_READ_BITFIELD_PROBED(next, in_iowait);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(bits_btf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	btf_bits.in_execve = BPF_CORE_READ_BITFIELD(next, in_execve);
	btf_bits.in_iowait = BPF_CORE_READ_BITFIELD(prev, in_iowait);
	btf_bits.reset_on_fork = BPF_CORE_READ_BITFIELD(prev, sched_reset_on_fork);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
