/* obj_optional: SEC("?...") programs are known but not loaded unless asked (libbpf's autoload off). */
#include "corpus.h"

__u64 opt_hits[2];

SEC("xdp")
int opt_always(struct xdp_md *ctx)
{
	opt_hits[0]++;
	return XDP_PASS;
}

SEC("?xdp")
int opt_on_request(struct xdp_md *ctx)
{
	opt_hits[1]++;
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
