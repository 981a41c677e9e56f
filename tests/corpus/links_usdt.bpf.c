/* links_usdt: a USDT program reading its probe's argument through libbpf's usdt.bpf.h, so the attach
 * code must fill the __bpf_usdt_specs map (argument locations) and give each location its spec id as
 * the BPF cookie, as libbpf does. */
#include "corpus.h"
#include <asm/ptrace.h>	/* struct pt_regs (UAPI layout) for bpf_tracing.h */
#include <bpf/usdt.bpf.h>

__u64 calls = 0;
__s64 total = 0;
__u64 cookie_seen = 0;

SEC("usdt")
int BPF_USDT(on_tick, int v)
{
	__sync_fetch_and_add(&calls, 1);
	__sync_fetch_and_add(&total, v);
	cookie_seen = bpf_usdt_cookie(ctx);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
