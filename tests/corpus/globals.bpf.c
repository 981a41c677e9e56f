/* globals: .rodata (const volatile), .data and .bss variables, a bounded loop, a 64-bit constant. */
#include "corpus.h"

const volatile __u32 threshold = 100;
const volatile __u64 magic = 0x1122334455667788ULL;
__u32 table[16] = {1, 2, 3, 5, 8, 13, 21, 34};
__u64 seen_total = 0;
char last_comm[16];

SEC("raw_tp/sys_enter")
int globals_loop(void *ctx)
{
	__u32 sum = 0;
	int i;

	for (i = 0; i < 16; i++) {
		if (table[i] > threshold)
			break;
		sum += table[i];
	}
	seen_total += sum ^ magic;
	bpf_get_current_comm(last_comm, sizeof(last_comm));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
