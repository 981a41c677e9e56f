/* obj_ksyms: a typeless ksym (an address from kallsyms), kfunc calls, and __weak ksyms/kfuncs this
 * kernel does not have (typed ksym variables are in obj_ksym_var: they need CONFIG_KALLSYMS_ALL). */
#include "corpus.h"

extern const void schedule __ksym;
extern const void corebpf_no_such_symbol __ksym __weak;
extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;
extern void corebpf_no_such_kfunc(void) __ksym __weak;

__u64 schedule_addr;
__u64 missing_addr;
__u32 kfunc_missing;

SEC("raw_tp/sys_enter")
int ksyms_read(void *ctx)
{
	schedule_addr = (__u64)&schedule;
	missing_addr = (__u64)&corebpf_no_such_symbol;
	bpf_rcu_read_lock();
	bpf_rcu_read_unlock();
	if (&corebpf_no_such_kfunc)
		corebpf_no_such_kfunc();
	else
		kfunc_missing = 1;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
