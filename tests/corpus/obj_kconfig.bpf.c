/* obj_kconfig: __kconfig externs (numbers, bool, tristate, char, string, synthetic, weak missing). */
#include "corpus.h"

extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern bool CONFIG_BPF_SYSCALL __kconfig;
extern enum libbpf_tristate CONFIG_BPF_JIT __kconfig;
extern char CONFIG_BPF_EVENTS __kconfig __weak;
extern int CONFIG_HZ __kconfig __weak;
extern bool CONFIG_COREBPF_DOES_NOT_EXIST __kconfig __weak;
extern __u64 CONFIG_NR_CPUS __kconfig __weak;

struct kconfig_seen {
	__u32 version;
	__u32 bpf_syscall;
	__u32 bpf_jit;
	__u32 bpf_events;
	__s32 hz;
	__u32 missing;
	__u64 nr_cpus;
};

struct kconfig_seen seen;

SEC("xdp")
int kconfig_read(struct xdp_md *ctx)
{
	seen.version = LINUX_KERNEL_VERSION;
	seen.bpf_syscall = CONFIG_BPF_SYSCALL;
	seen.bpf_jit = CONFIG_BPF_JIT;
	seen.bpf_events = CONFIG_BPF_EVENTS;
	seen.hz = CONFIG_HZ;
	seen.missing = CONFIG_COREBPF_DOES_NOT_EXIST;
	seen.nr_cpus = CONFIG_NR_CPUS;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
