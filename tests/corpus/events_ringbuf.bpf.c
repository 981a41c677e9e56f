/* Event producers for the ring and perf buffer readers: tc programs (driven by BPF_PROG_TEST_RUN)
 * writing `struct event` records, with attempted/failed counts kept in a map.
 *
 * The sequence number is `attempted++` taken under a bpf_spin_lock (Linux 5.1), not
 * `__sync_fetch_and_add` with its result used: that compiles to an atomic fetch-add (BPF_FETCH),
 * which needs Linux 5.12, and ring buffers (5.8) must work on 5.10. The lock keeps the numbers
 * unique and gap-free with producers on several CPUs (attempted == received + failed). The kernel
 * refuses spin locks in socket filters and tracing programs, hence tc programs. The failure count
 * needs no old value: a result-unused __sync_fetch_and_add is a plain atomic add (any kernel). */
#include "corpus.h"

struct event {
	__u64 seq;
	__u32 cpu;
	__u32 len;
	char tag[8];
};

/* clang emits BTF only for types that globals or signatures use: keep `struct event` in the object's
 * BTF so readers can decode records by name (the usual libbpf-tools idiom) */
const struct event *unused_event __attribute__((unused));

struct counts {
	__u64 attempted;
	__u64 failed;
	struct bpf_spin_lock lock;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct counts);
} counters SEC(".maps");

static __always_inline struct counts *counts(void)
{
	__u32 key = 0;

	return bpf_map_lookup_elem(&counters, &key);
}

/* the next sequence number: attempted++ under the lock (see the top of the file) */
static __always_inline __u64 next_seq(struct counts *c)
{
	__u64 seq;

	bpf_spin_lock(&c->lock);
	seq = c->attempted;
	c->attempted = seq + 1;
	bpf_spin_unlock(&c->lock);
	return seq;
}

SEC("tc")
int produce_ringbuf(struct __sk_buff *skb)
{
	struct counts *c = counts();
	struct event *e;
	__u64 seq;

	if (!c)
		return 0;
	seq = next_seq(c);
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&c->failed, 1);
		return 0;
	}
	e->seq = seq;
	e->cpu = bpf_get_smp_processor_id();
	e->len = skb->len;
	__builtin_memcpy(e->tag, "ringbuf", 8);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tc")
int produce_perf(struct __sk_buff *skb)
{
	struct counts *c = counts();
	struct event e = {};

	if (!c)
		return 0;
	e.seq = next_seq(c);
	e.cpu = bpf_get_smp_processor_id();
	e.len = skb->len;
	__builtin_memcpy(e.tag, "perfbuf", 8);
	if (bpf_perf_event_output(skb, &perf_events, BPF_F_CURRENT_CPU, &e, sizeof(e)))
		__sync_fetch_and_add(&c->failed, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
