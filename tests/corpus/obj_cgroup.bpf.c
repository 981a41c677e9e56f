/* obj_cgroup: cgroup programs with expected attach types from the section name. */
#include "corpus.h"

__u64 cg_counts[4];

SEC("cgroup_skb/ingress")
int cg_ingress(struct __sk_buff *skb)
{
	cg_counts[0]++;
	return 1;
}

SEC("cgroup/sock_create")
int cg_sock_create(struct bpf_sock *sk)
{
	cg_counts[1]++;
	return 1;
}

SEC("cgroup/connect4")
int cg_connect4(struct bpf_sock_addr *ctx)
{
	cg_counts[2]++;
	return 1;
}

SEC("cgroup/sysctl")
int cg_sysctl(struct bpf_sysctl *ctx)
{
	cg_counts[3]++;
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
