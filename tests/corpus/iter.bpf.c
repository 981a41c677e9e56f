/* iter/task: print one line per task with bpf_seq_printf. */
#include "corpus.h"
#include <bpf/bpf_tracing.h>

SEC("iter/task")
int dump_tasks(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;

	if (!task)
		return 0;
	if (ctx->meta->seq_num == 0)
		BPF_SEQ_PRINTF(seq, "    pid comm\n");
	BPF_SEQ_PRINTF(seq, "%7d %s\n", task->pid, task->comm);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
