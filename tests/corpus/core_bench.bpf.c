/* core_bench: ten programs with about fifty CO-RE relocations in all, for the load benchmark
 * (open + relocate + load, corebpf vs libbpf). Each program reads a few task/mm/fs fields. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

struct bench_sample {
	__u64 a, b, c, d, e;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 10);
	__type(key, __u32);
	__type(value, struct bench_sample);
} samples SEC(".maps");

static __always_inline struct bench_sample *slot(__u32 key)
{
	return bpf_map_lookup_elem(&samples, &key);
}

#define CURRENT() ((struct task_struct *)bpf_get_current_task())

SEC("raw_tp/sched_switch")
int bench_switch(void *ctx)
{
	struct task_struct *t = CURRENT();
	struct bench_sample *s = slot(0);

	if (!s)
		return 0;
	s->a = BPF_CORE_READ(t, pid);
	s->b = BPF_CORE_READ(t, tgid);
	s->c = BPF_CORE_READ(t, real_parent, pid);
	s->d = BPF_CORE_READ(t, flags);
	s->e = BPF_CORE_READ(t, prio);
	return 0;
}

SEC("raw_tp/sched_wakeup")
int bench_wakeup(void *ctx)
{
	struct task_struct *t = CURRENT();
	struct bench_sample *s = slot(1);

	if (!s)
		return 0;
	s->a = BPF_CORE_READ(t, mm, total_vm);
	s->b = BPF_CORE_READ(t, mm, map_count);
	s->c = BPF_CORE_READ(t, mm, start_stack);
	s->d = BPF_CORE_READ(t, mm, arg_start);
	s->e = BPF_CORE_READ(t, mm, env_start);
	return 0;
}

SEC("raw_tp/sched_process_fork")
int bench_fork(void *ctx)
{
	struct task_struct *t = CURRENT();
	struct bench_sample *s = slot(2);

	if (!s)
		return 0;
	s->a = BPF_CORE_READ(t, cred, uid.val);
	s->b = BPF_CORE_READ(t, cred, gid.val);
	s->c = BPF_CORE_READ(t, cred, euid.val);
	s->d = BPF_CORE_READ(t, cred, egid.val);
	s->e = BPF_CORE_READ(t, cred, fsuid.val);
	return 0;
}

SEC("raw_tp/sched_process_exec")
int bench_exec(void *ctx)
{
	struct task_struct *t = CURRENT();
	struct bench_sample *s = slot(3);

	if (!s)
		return 0;
	s->a = BPF_CORE_READ(t, fs, root.dentry, d_inode, i_ino);
	s->b = BPF_CORE_READ(t, fs, pwd.dentry, d_inode, i_ino);
	s->c = BPF_CORE_READ(t, fs, umask);
	s->d = BPF_CORE_READ(t, fs, users);
	s->e = BPF_CORE_READ(t, nsproxy, mnt_ns, ns.inum);
	return 0;
}

SEC("raw_tp/sched_process_exit")
int bench_exit(void *ctx)
{
	struct task_struct *t = CURRENT();
	struct bench_sample *s = slot(4);

	if (!s)
		return 0;
	s->a = BPF_CORE_READ(t, exit_code);
	s->b = BPF_CORE_READ(t, exit_signal);
	s->c = BPF_CORE_READ(t, signal, nr_threads);
	s->d = BPF_CORE_READ(t, signal, rlim[7].rlim_cur);
	s->e = BPF_CORE_READ(t, nsproxy, pid_ns_for_children, level);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(bench_switch_btf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct bench_sample *s = slot(5);

	if (!s)
		return 0;
	s->a = prev->pid;
	s->b = next->pid;
	s->c = prev->tgid;
	s->d = next->prio;
	s->e = BPF_CORE_READ(next, real_parent, tgid);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(bench_fork_btf, struct task_struct *parent, struct task_struct *child)
{
	struct bench_sample *s = slot(6);

	if (!s)
		return 0;
	s->a = parent->pid;
	s->b = child->pid;
	s->c = parent->flags;
	s->d = child->flags;
	s->e = bpf_core_field_size(child->comm);
	return 0;
}

SEC("tracepoint/sched/sched_switch")
int bench_switch_tp(struct trace_event_raw_sched_switch *ctx)
{
	struct bench_sample *s = slot(7);

	if (!s)
		return 0;
	s->a = ctx->prev_pid;
	s->b = ctx->next_pid;
	s->c = ctx->prev_prio;
	s->d = ctx->next_prio;
	s->e = ctx->prev_state;
	return 0;
}

SEC("kprobe/vfs_read")
int BPF_KPROBE(bench_read, struct file *file)
{
	struct bench_sample *s = slot(8);

	if (!s)
		return 0;
	s->a = BPF_CORE_READ(file, f_inode, i_ino);
	s->b = BPF_CORE_READ(file, f_inode, i_mode);
	s->c = BPF_CORE_READ(file, f_flags);
	s->d = BPF_CORE_READ(file, f_mode);
	s->e = BPF_CORE_READ(file, f_inode, i_size);
	return 0;
}

SEC("raw_tp/sys_enter")
int bench_sys_enter(void *ctx)
{
	struct task_struct *t = CURRENT();
	struct bench_sample *s = slot(9);

	if (!s)
		return 0;
	s->a = bpf_core_type_size(struct task_struct);
	s->b = bpf_core_field_exists(t->mm);
	s->c = bpf_core_enum_value(enum pid_type, PIDTYPE_TGID);
	s->d = BPF_CORE_READ(t, group_leader, pid);
	s->e = BPF_CORE_READ(t, thread_pid, numbers[0].nr);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
