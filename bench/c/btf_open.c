/* Anchor for bench/btf_open.py: open the running kernel's BTF with libbpf, find struct task_struct
 * and the byte offset of its member "pid", many times; print the mean wall and CPU time per iteration
 * in ns.
 * Usage: btf_open [iterations] */
#include <bpf/btf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long long now_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	int iters = argc > 1 ? atoi(argv[1]) : 50;
	long long offset = -1, start, cpu_start, total, cpu_total;

	start = now_ns(CLOCK_MONOTONIC);
	cpu_start = now_ns(CLOCK_PROCESS_CPUTIME_ID);
	for (int i = 0; i < iters; i++) {
		struct btf *btf = btf__load_vmlinux_btf();
		if (!btf) {
			fprintf(stderr, "btf__load_vmlinux_btf failed\n");
			return 1;
		}
		int id = btf__find_by_name_kind(btf, "task_struct", BTF_KIND_STRUCT);
		if (id < 0) {
			fprintf(stderr, "task_struct not found\n");
			return 1;
		}
		const struct btf_type *t = btf__type_by_id(btf, id);
		const struct btf_member *m = btf_members(t);
		offset = -1;
		for (int j = 0; j < btf_vlen(t); j++, m++) {
			if (strcmp(btf__name_by_offset(btf, m->name_off), "pid") == 0) {
				offset = btf_member_bit_offset(t, j) / 8;
				break;
			}
		}
		btf__free(btf);
	}
	total = now_ns(CLOCK_MONOTONIC) - start;
	cpu_total = now_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu_start;
	printf("{\"iterations\": %d, \"ns_per_iter\": %lld, \"cpu_ns_per_iter\": %lld, \"pid_offset\": %lld}\n",
	       iters, total / iters, cpu_total / iters, offset);
	return offset < 0;
}
