/* obj_fentry: fentry/fexit programs (BPF trampolines), refused with EPERM by this host kernel. */
#include "corpus.h"
#include <bpf/bpf_tracing.h>

__u64 entered, exited;

SEC("fentry/do_unlinkat")
int BPF_PROG(unlink_enter, int dfd)
{
	entered++;
	return 0;
}

SEC("fexit/do_unlinkat")
int BPF_PROG(unlink_exit, int dfd, void *name, long ret)
{
	exited++;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
