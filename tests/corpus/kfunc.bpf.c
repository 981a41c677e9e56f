/* kfuncs: calls to kernel functions by BTF id (ksym variables need CONFIG_KALLSYMS_ALL, absent here). */
#include "corpus.h"
#include <bpf/bpf_tracing.h>

extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;

__u64 switches_seen = 0;

SEC("tp_btf/sched_switch")
int BPF_PROG(kfunc_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	bpf_rcu_read_lock();
	switches_seen += next->pid != 0;
	bpf_rcu_read_unlock();
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
