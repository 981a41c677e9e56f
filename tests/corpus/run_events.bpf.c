/* `corebpf run` fixture: a tracepoint on getpgid() sends one `struct event` into a ring buffer, one
 * into a perf buffer, and prints a bpf_printk line; `target_tgid` (const volatile, 0: every process)
 * filters by process before load.
 *
 * `seq` numbers the events of each thread (0, 1, 2...): a per-thread counter in a hash map, which
 * only that thread's own syscalls update, so a plain increment is exact. A global fetch-add
 * (`__sync_fetch_and_add` with its result used) would need the atomic fetch instructions of Linux
 * 5.12, and tracing programs may not take bpf_spin_locks; this object must load on 5.10. `sent`
 * counts every event sent: a result-unused __sync_fetch_and_add, a plain atomic add (any kernel). */
#include "corpus.h"

enum event_source {
	SOURCE_RING = 1,
	SOURCE_PERF = 2,
};

struct event {
	__u32 pid;
	__u32 tgid;
	__u64 seq;
	char comm[16];
	enum event_source source;
};

/* keep `struct event` in the object's BTF (clang emits only types that globals or signatures use) */
const struct event *unused_event __attribute__((unused));

const volatile __u32 target_tgid = 0;
__u64 sent = 0;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);	/* thread id */
	__type(value, __u64);	/* events this thread sent so far */
} thread_seq SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf_events SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getpgid")
int on_getpgid(struct syscall_enter_ctx *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	__u32 tid = (__u32)id;
	struct event *e, pe = {};
	__u64 zero = 0, *n;

	if (target_tgid && tgid != target_tgid)
		return 0;
	n = bpf_map_lookup_elem(&thread_seq, &tid);
	if (!n) {
		bpf_map_update_elem(&thread_seq, &tid, &zero, BPF_NOEXIST);
		n = bpf_map_lookup_elem(&thread_seq, &tid);
		if (!n)
			return 0;
	}
	pe.pid = tid;
	pe.tgid = tgid;
	pe.seq = (*n)++;
	__sync_fetch_and_add(&sent, 1);
	bpf_get_current_comm(pe.comm, sizeof(pe.comm));
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		*e = pe;
		e->source = SOURCE_RING;
		bpf_ringbuf_submit(e, 0);
	}
	pe.source = SOURCE_PERF;
	bpf_perf_event_output(ctx, &perf_events, BPF_F_CURRENT_CPU, &pe, sizeof(pe));
	bpf_printk("corebpf-run getpgid tgid=%u seq=%llu", tgid, pe.seq);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
