/* obj_lsm: an LSM program (BPF trampoline), refused with EPERM by this host kernel. */
#include "corpus.h"
#include <bpf/bpf_tracing.h>

__u64 opens;

SEC("lsm/file_open")
int BPF_PROG(lsm_file_open, void *file)
{
	opens++;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
