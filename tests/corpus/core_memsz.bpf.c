/* core_memsz: a local flavour declares unsigned fields wider than the kernel's; libbpf shrinks the
 * load (LDX DW -> W) because zero extension keeps unsigned values and pointers intact. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

struct task_struct___wide {
	unsigned long long flags;
	unsigned long long ptrace;
	struct task_struct___wide *real_parent;
} __attribute__((preserve_access_index));

__u64 wide_flags;
__u64 wide_ptrace;
__u64 parent_flags;

SEC("tp_btf/sched_process_fork")
int BPF_PROG(fork_btf, struct task_struct *parent, struct task_struct *child)
{
	struct task_struct___wide *w = (struct task_struct___wide *)parent;

	wide_flags = w->flags;
	wide_ptrace = w->ptrace;
	parent_flags = w->real_parent->flags;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
