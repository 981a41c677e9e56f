/* obj_globals: const volatile settings of several types (set before load), .data/.bss, custom
 * .data.* and .rodata.* sections, a static variable; the program copies what it sees into .bss. */
#include "corpus.h"

enum mode { MODE_OFF = 0, MODE_COUNT = 1, MODE_DROP = 2 };

struct limits {
	__u32 lo;
	__u32 hi;
};

const volatile __u32 target_port = 80;
const volatile __u64 cookie = 0xdeadbeefcafef00dULL;
const volatile enum mode run_mode = MODE_COUNT;
const volatile struct limits bounds = { .lo = 10, .hi = 20 };
const volatile char label[8] = "default";
const volatile __u32 custom_ro SEC(".rodata.settings") = 7;

__u64 counter = 5;
__u32 custom_rw SEC(".data.stats") = 11;
static __u32 calls;

struct seen {
	__u32 port;
	__u32 mode;
	__u64 cookie;
	__u32 lo, hi;
	__u32 custom_ro;
	__u32 calls;
	char label[8];
} seen;

SEC("xdp")
int globals_xdp(struct xdp_md *ctx)
{
	int i;

	calls++;
	seen.port = target_port;
	seen.mode = run_mode;
	seen.cookie = cookie;
	seen.lo = bounds.lo;
	seen.hi = bounds.hi;
	seen.custom_ro = custom_ro;
	seen.calls = calls;
	for (i = 0; i < 8; i++)
		seen.label[i] = label[i];
	counter += 1;
	custom_rw += 2;
	return run_mode == MODE_DROP ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
