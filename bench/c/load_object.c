// The libbpf anchor of bench/load_object.py: open + load (CO-RE, relocations, maps, programs) of one
// object, timed inside the process over several iterations; prints JSON {"open_ns": [...], "load_ns": [...],
// "total_ns": [...], "programs": N}. The first iteration pays libbpf's vmlinux BTF parse (cold); libbpf
// keeps no BTF across bpf_object instances, so every iteration parses vmlinux BTF again.
//
//   gcc -O2 -o load_object load_object.c -lbpf && ./load_object OBJ ITERATIONS
//
// Also the libbpf oracle of the loader's tag tests: `./load_object OBJ --tags [PROG...]` loads OBJ once
// with autoload turned off for the named programs and prints {"program": "tag", ...} of what loaded.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static int print_tags(const char *path, int nskip, char **skip)
{
	struct bpf_program *prog;
	struct bpf_object *obj;
	int i, first = 1;

	obj = bpf_object__open_file(path, NULL);
	if (!obj) {
		fprintf(stderr, "bpf_object__open_file(%s) failed\n", path);
		return 1;
	}
	bpf_object__for_each_program(prog, obj)
		for (i = 0; i < nskip; i++)
			if (!strcmp(bpf_program__name(prog), skip[i]))
				bpf_program__set_autoload(prog, false);
	if (bpf_object__load(obj)) {
		fprintf(stderr, "bpf_object__load(%s) failed\n", path);
		return 1;
	}
	printf("{");
	bpf_object__for_each_program(prog, obj) {
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);

		if (bpf_program__fd(prog) < 0)
			continue;
		if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len))
			return 1;
		printf("%s\"%s\": \"", first ? "" : ", ", bpf_program__name(prog));
		for (i = 0; i < BPF_TAG_SIZE; i++)
			printf("%02x", info.tag[i]);
		printf("\"");
		first = 0;
	}
	printf("}\n");
	bpf_object__close(obj);
	return 0;
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
	if (argc > 2 && !strcmp(argv[2], "--tags"))
		return print_tags(argv[1], argc - 3, argv + 3);
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
