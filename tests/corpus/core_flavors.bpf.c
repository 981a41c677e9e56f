/* core_flavors: local flavours of kernel structs (___new/___old/___v1) chosen by field existence;
 * the branch for the layout this kernel lacks is poisoned and dead. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct task_struct___new {
	unsigned int __state;
} __attribute__((preserve_access_index));

struct task_struct___old {
	long state;
} __attribute__((preserve_access_index));

struct mm_struct___v1 {
	unsigned long total_vm;
	unsigned long hiwater_rss;
} __attribute__((preserve_access_index));

__u64 last_state;
__u64 last_total_vm;
__u32 last_next_pid;

SEC("tracepoint/sched/sched_switch")
int switch_tp(struct trace_event_raw_sched_switch *ctx)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct mm_struct___v1 *mm;

	if (bpf_core_field_exists(((struct task_struct___new *)t)->__state))
		last_state = BPF_CORE_READ((struct task_struct___new *)t, __state);
	else
		last_state = BPF_CORE_READ((struct task_struct___old *)t, state);
	mm = (struct mm_struct___v1 *)BPF_CORE_READ(t, mm);
	if (mm)
		last_total_vm = BPF_CORE_READ(mm, total_vm);
	last_next_pid = ctx->next_pid;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
