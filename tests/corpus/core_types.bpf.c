/* core_types: type existence and size, local and kernel type ids, for structs, unions, enums and
 * typedefs, including a type the kernel does not have. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct corebpf_not_in_kernel {
	int a;
	long b;
};

typedef struct corebpf_not_in_kernel corebpf_missing_t;

/* flavours that exist by name; whether their layout matches the kernel's differs (the
 * TYPE_MATCHES differential test rewrites these TYPE_EXISTS relocations into TYPE_MATCHES ones) */
struct task_struct___subset {
	int pid;
	struct task_struct *real_parent;
	struct mm_struct *mm;
};

struct task_struct___gone {
	long state;
	int pid;
};

struct file___narrow {
	unsigned char f_flags;
};

__u64 facts[16];

SEC("tracepoint/syscalls/sys_enter_getpid")
int types_tp(void *ctx)
{
	facts[0] = bpf_core_type_exists(struct task_struct);
	facts[1] = bpf_core_type_size(struct task_struct);
	facts[2] = bpf_core_type_exists(struct corebpf_not_in_kernel);
	facts[3] = bpf_core_type_size(struct corebpf_not_in_kernel);
	facts[4] = bpf_core_type_exists(union bpf_attr);
	facts[5] = bpf_core_type_size(union bpf_attr);
	facts[6] = bpf_core_type_size(enum bpf_map_type);
	facts[7] = bpf_core_type_exists(u64);
	facts[8] = bpf_core_type_exists(corebpf_missing_t);
	facts[9] = bpf_core_type_id_local(struct task_struct);
	facts[10] = bpf_core_type_id_kernel(struct task_struct);
	facts[11] = bpf_core_type_size(struct sk_buff);
	facts[12] = bpf_core_type_exists(struct task_struct___subset);
	facts[13] = bpf_core_type_exists(struct task_struct___gone);
	facts[14] = bpf_core_type_exists(struct file___narrow);
	facts[15] = bpf_core_type_exists(enum pid_type);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
