// The libbpf anchor of bench/load_object.py: open + load (CO-RE, relocations, maps, programs) of one
// object, timed inside the process over several iterations; prints JSON {"open_ns": [...], "load_ns": [...],
// "total_ns": [...], "programs": N}. The first iteration pays libbpf's vmlinux BTF parse (cold); libbpf
// keeps no BTF across bpf_object instances, so every iteration parses vmlinux BTF again.
//
//   gcc -O2 -o load_object load_object.c -lbpf && ./load_object OBJ ITERATIONS
#include <bpf/libbpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int quiet(enum libbpf_print_level level, const char *fmt, va_list args)
{
	return level == LIBBPF_WARN ? vfprintf(stderr, fmt, args) : 0;
}

int main(int argc, char **argv)
{
	int iterations = argc > 2 ? atoi(argv[2]) : 10, i, progs = 0;
	long long *open_ns, *load_ns;

	if (argc < 2) {
		fprintf(stderr, "usage: %s OBJ [ITERATIONS]\n", argv[0]);
		return 2;
	}
	libbpf_set_print(quiet);
	open_ns = calloc(iterations, sizeof(*open_ns));
	load_ns = calloc(iterations, sizeof(*load_ns));
	for (i = 0; i < iterations; i++) {
		struct bpf_program *prog;
		struct bpf_object *obj;
		long long t0, t1, t2;

		t0 = now_ns();
		obj = bpf_object__open_file(argv[1], NULL);
		t1 = now_ns();
		if (!obj) {
			fprintf(stderr, "bpf_object__open_file(%s) failed\n", argv[1]);
			return 1;
		}
		if (bpf_object__load(obj)) {
			fprintf(stderr, "bpf_object__load(%s) failed\n", argv[1]);
			return 1;
		}
		t2 = now_ns();
		progs = 0;
		bpf_object__for_each_program(prog, obj)
			progs++;
		bpf_object__close(obj);
		open_ns[i] = t1 - t0;
		load_ns[i] = t2 - t1;
	}
	printf("{\"programs\": %d, \"open_ns\": [", progs);
	for (i = 0; i < iterations; i++)
		printf("%s%lld", i ? ", " : "", open_ns[i]);
	printf("], \"load_ns\": [");
	for (i = 0; i < iterations; i++)
		printf("%s%lld", i ? ", " : "", load_ns[i]);
	printf("]}\n");
	return 0;
}
