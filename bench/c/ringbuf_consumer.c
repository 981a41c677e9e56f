// The libbpf anchor for bench/ringbuf.py: drain a BPF ring buffer with ring_buffer__consume() and a
// counting callback. The ring is shared with the Python side: its fd is inherited (argv[1]).
// Protocol on stdin/stdout, one line per round: the driver fills the ring, writes "consume", and
// reads back "<records> <nanoseconds>"; "quit" ends. Build: gcc -O2 -o ringbuf_consumer ringbuf_consumer.c -lbpf
#include <bpf/libbpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static unsigned long long records;

static int count_record(void *ctx, void *data, size_t size)
{
	(void)ctx;
	(void)data;
	(void)size;
	records++;
	return 0;
}

static unsigned long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	char line[64];
	struct ring_buffer *rb;

	if (argc != 2) {
		fprintf(stderr, "usage: %s RINGBUF_MAP_FD\n", argv[0]);
		return 2;
	}
	rb = ring_buffer__new(atoi(argv[1]), count_record, NULL, NULL);
	if (!rb) {
		perror("ring_buffer__new");
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof(line), stdin)) {
		unsigned long long t0, t1;
		int err;

		if (strncmp(line, "consume", 7) != 0)
			break;
		records = 0;
		t0 = now_ns();
		err = ring_buffer__consume(rb);
		t1 = now_ns();
		if (err < 0) {
			fprintf(stderr, "ring_buffer__consume: %d\n", err);
			ring_buffer__free(rb);
			return 1;
		}
		printf("%llu %llu\n", records, t1 - t0);
	}
	ring_buffer__free(rb);
	return 0;
}
