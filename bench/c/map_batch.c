/* Anchor for bench/map_batch.py: libbpf's batch calls on a hash map (u32 key -> u64 value).
 *
 * usage: map_batch N ROUNDS
 * Each round creates a fresh BPF_MAP_TYPE_HASH with N entries of room, writes N elements with one
 * bpf_map_update_batch() and reads them all back with bpf_map_lookup_batch() until ENOENT. Prints one
 * JSON object with the per-round nanoseconds of each phase. Buffers are allocated outside the timing.
 */
#include <bpf/bpf.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s N ROUNDS\n", argv[0]);
		return 2;
	}
	uint32_t n = (uint32_t)atoi(argv[1]);
	int rounds = atoi(argv[2]);
	uint32_t *keys = malloc(n * sizeof(*keys)), *out_keys = malloc(n * sizeof(*out_keys));
	uint64_t *values = malloc(n * sizeof(*values)), *out_values = malloc(n * sizeof(*out_values));
	if (!keys || !out_keys || !values || !out_values)
		return 1;
	for (uint32_t i = 0; i < n; i++) {
		keys[i] = i;
		values[i] = (uint64_t)i * 3 + 7;
	}
	DECLARE_LIBBPF_OPTS(bpf_map_batch_opts, opts);
	printf("{\"update_ns\": [");
	uint64_t *upd = calloc(rounds, sizeof(*upd)), *lkp = calloc(rounds, sizeof(*lkp));
	for (int r = 0; r < rounds; r++) {
		int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "bench_c", 4, 8, n, NULL);
		if (fd < 0) {
			perror("bpf_map_create");
			return 1;
		}
		uint32_t count = n;
		uint64_t t0 = now_ns();
		int err = bpf_map_update_batch(fd, keys, values, &count, &opts);
		uint64_t t1 = now_ns();
		if (err || count != n) {
			fprintf(stderr, "update_batch: %d, count %u\n", err, count);
			return 1;
		}
		uint64_t token_in = 0, token_out = 0;
		uint32_t total = 0;
		int first = 1;
		uint64_t t2 = now_ns();
		for (;;) {
			count = n - total;
			err = bpf_map_lookup_batch(fd, first ? NULL : &token_in, &token_out, out_keys + total,
						   out_values + total, &count, &opts);
			total += count;
			if (err < 0 && (errno == ENOENT || err == -ENOENT))
				break;
			if (err < 0) {
				fprintf(stderr, "lookup_batch: %d errno %d\n", err, errno);
				return 1;
			}
			first = 0;
			token_in = token_out;
			if (total == n)
				break; /* the map cannot hold more */
		}
		uint64_t t3 = now_ns();
		if (total != n) {
			fprintf(stderr, "lookup_batch read %u of %u\n", total, n);
			return 1;
		}
		upd[r] = t1 - t0;
		lkp[r] = t3 - t2;
		close(fd);
	}
	for (int r = 0; r < rounds; r++)
		printf("%s%llu", r ? ", " : "", (unsigned long long)upd[r]);
	printf("], \"lookup_ns\": [");
	for (int r = 0; r < rounds; r++)
		printf("%s%llu", r ? ", " : "", (unsigned long long)lkp[r]);
	printf("]}\n");
	return 0;
}
