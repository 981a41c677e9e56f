/* core_enums: enum value relocations by name (32-bit enum in ALU immediates, a 64-bit enum in a
 * ld_imm64), enumerator existence, a local flavour of a kernel enum with a missing enumerator. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

enum pid_type___local {
	PIDTYPE_SID___local = 100,
	PIDTYPE_CBPF_MISSING = 101,
};

__u64 values[8];

SEC("raw_tp/sched_process_fork")
int enums_raw(void *ctx)
{
	values[0] = bpf_core_enum_value(enum pid_type, PIDTYPE_TGID);
	values[1] = bpf_core_enum_value_exists(enum pid_type, PIDTYPE_SID);
	values[2] = bpf_core_enum_value(enum pid_type___local, PIDTYPE_SID___local);
	values[3] = bpf_core_enum_value_exists(enum pid_type___local, PIDTYPE_CBPF_MISSING);
	if (bpf_core_enum_value_exists(enum pid_type___local, PIDTYPE_CBPF_MISSING))
		values[4] = bpf_core_enum_value(enum pid_type___local, PIDTYPE_CBPF_MISSING);
	values[5] = bpf_core_enum_value(enum perf_callchain_context, PERF_CONTEXT_USER);
	values[6] = bpf_core_enum_value(enum bpf_map_type, BPF_MAP_TYPE_RINGBUF);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
