/* obj_ksym_var: a typed ksym variable (per-CPU runqueues, resolved to its vmlinux BTF id). The kernel
 * then needs the variable's address from kallsyms, i.e. CONFIG_KALLSYMS_ALL (absent on some kernels). */
#include "corpus.h"

struct rq {
	int cpu;
};

extern const struct rq runqueues __ksym;

__u32 rq_cpu;

SEC("raw_tp/sys_enter")
int ksym_var_read(void *ctx)
{
	struct rq *rq = bpf_per_cpu_ptr(&runqueues, 0);

	if (rq)
		rq_cpu = rq->cpu;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
