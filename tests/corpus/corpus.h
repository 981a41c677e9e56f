/* Shared includes for the corpus, and the few kernel types the programs read.
 *
 * The kernel types are minimal CO-RE definitions (preserve_access_index) instead of a
 * generated vmlinux.h, so the objects do not depend on the kernel they were built on:
 * libbpf relocates the field offsets against the running kernel at load time.
 */
#ifndef CORPUS_H
#define CORPUS_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <stdbool.h>

#define CORE __attribute__((preserve_access_index))

struct task_struct {
	int pid;
	int tgid;
	char comm[16];
} CORE;

struct seq_file;

struct bpf_iter_meta {
	struct seq_file *seq;
	__u64 session_id;
	__u64 seq_num;
} CORE;

struct bpf_iter__task {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
} CORE;

struct trace_entry {
	unsigned short type;
	unsigned char flags;
	unsigned char preempt_count;
	int pid;
};

/* tracepoint/syscalls/sys_enter_*: the common header, the syscall number, six arguments */
struct syscall_enter_ctx {
	struct trace_entry ent;
	int id;
	unsigned long args[6];
};

#endif
