/* socket filter: legacy packet loads (LD_ABS/LD_IND) to accept only IPv4 TCP (cpu v1). */
#include "corpus.h"
#include <stddef.h>

unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");
unsigned long long load_word(void *skb, unsigned long long off) asm("llvm.bpf.load.word");

SEC("socket")
int sock_tcp_only(struct __sk_buff *skb)
{
	__u64 ihl;

	if (load_half(skb, offsetof(struct ethhdr, h_proto)) != ETH_P_IP)
		return 0;
	if (load_byte(skb, ETH_HLEN + offsetof(struct iphdr, protocol)) != 6 /* IPPROTO_TCP */)
		return 0;
	ihl = (load_byte(skb, ETH_HLEN) & 0x0f) << 2;
	/* destination port of TCP: a variable offset, so an indirect load */
	if (load_half(skb, ETH_HLEN + ihl + 2) == 22)
		return 0;
	return load_word(skb, ETH_HLEN + 12) ? skb->len : 0;
}

char LICENSE[] SEC("license") = "GPL";
