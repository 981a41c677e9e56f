/* core_fields: field byte offsets through BPF_CORE_READ chains (raw_tp) and direct typed loads
 * (tp_btf), field sizes and signedness, against this kernel's vmlinux.h. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

struct exec_event {
	__u32 pid;
	__u32 ppid;
	__u64 start_time;
	__u32 comm_size;
	__u32 pid_signed;
	__u32 flags_signed;
	__u32 pid_offset;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct exec_event);
} exec_events SEC(".maps");

SEC("raw_tp/sched_process_exec")
int exec_raw(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *p = (struct task_struct *)ctx->args[0];
	__u32 key = 0;
	struct exec_event *e = bpf_map_lookup_elem(&exec_events, &key);

	if (!e)
		return 0;
	e->pid = BPF_CORE_READ(p, pid);
	e->ppid = BPF_CORE_READ(p, real_parent, tgid);
	e->start_time = BPF_CORE_READ(p, start_time);
	e->comm_size = bpf_core_field_size(p->comm);
	e->pid_signed = __builtin_preserve_field_info(p->pid, BPF_FIELD_SIGNED);
	e->flags_signed = __builtin_preserve_field_info(p->flags, BPF_FIELD_SIGNED);
	e->pid_offset = bpf_core_field_offset(p->pid);
	BPF_CORE_READ_STR_INTO(&e->comm, p, comm);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(exec_btf, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 key = 1;
	struct exec_event *e = bpf_map_lookup_elem(&exec_events, &key);

	if (!e)
		return 0;
	e->pid = p->pid;
	e->ppid = p->real_parent->tgid;
	e->start_time = p->start_time;
	e->comm_size = bpf_core_field_size(bprm->buf);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
