/* obj_ksyms_weak: a typeless ksym (an address from kallsyms) and __weak ksyms/kfuncs no kernel has,
 * with the bpf_ksym_exists-style guard, and no kfunc the kernel must provide: typeless and weak ksyms
 * work on every kernel (Linux 5.10 included), while obj_ksyms also calls the bpf_rcu_read_lock kfunc,
 * which needs Linux 6.2. The guarded call to the missing weak kfunc stays in dead code the verifier
 * never visits. */
#include "corpus.h"

extern const void schedule __ksym;
extern const void corebpf_no_such_symbol __ksym __weak;
extern void corebpf_no_such_kfunc(void) __ksym __weak;

__u64 schedule_addr;
__u64 missing_addr;
__u32 kfunc_missing;

SEC("raw_tp/sys_enter")
int ksyms_weak_read(void *ctx)
{
	schedule_addr = (__u64)&schedule;
	missing_addr = (__u64)&corebpf_no_such_symbol;
	if (&corebpf_no_such_kfunc)
		corebpf_no_such_kfunc();
	else
		kfunc_missing = 1;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
