/* links_overhead: one counting program per tracing attach method on the getpgid syscall, for the
 * attach tests (auto-attach from section names) and bench/attach_overhead.py (the kernel's
 * samples/bpf/test_overhead table). Each program only bumps its own counter: the cost measured is
 * the attach method's, not the program's. Programs on sys_enter (every syscall) count only getpgid,
 * so other processes' syscalls do not fight over the counter's cache line. */
#include "corpus.h"

const volatile long getpgid_nr = 121;	/* x86-64; set before load on other architectures */

__u64 tp_hits = 0;
__u64 raw_hits = 0;
__u64 btf_hits = 0;
__u64 kprobe_hits = 0;
__u64 fentry_hits = 0;

SEC("tracepoint/syscalls/sys_enter_getpgid")
int tp_getpgid(void *ctx)
{
	__sync_fetch_and_add(&tp_hits, 1);
	return 0;
}

SEC("raw_tracepoint/sys_enter")
int raw_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	if (ctx->args[1] != getpgid_nr)
		return 0;
	__sync_fetch_and_add(&raw_hits, 1);
	return 0;
}

SEC("tp_btf/sys_enter")
int btf_sys_enter(__u64 *ctx)
{
	if (ctx[1] != getpgid_nr)
		return 0;
	__sync_fetch_and_add(&btf_hits, 1);
	return 0;
}

SEC("ksyscall/getpgid")
int kprobe_getpgid(void *ctx)
{
	__sync_fetch_and_add(&kprobe_hits, 1);
	return 0;
}

SEC("fentry/__x64_sys_getpgid")
int fentry_getpgid(void *ctx)
{
	__sync_fetch_and_add(&fentry_hits, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
