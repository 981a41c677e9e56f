/* core_exists: field-exists fallbacks across a kernel layout change (inode timestamps became
 * i_atime_sec/i_atime_nsec in 6.6), in a kprobe program. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

struct inode___old {
	struct timespec64 i_atime;
} __attribute__((preserve_access_index));

struct inode___mid {
	struct timespec64 __i_atime;
} __attribute__((preserve_access_index));

__u64 atime_sec;
__u32 layout;
__u32 has_dentry_op;

SEC("kprobe/vfs_read")
int BPF_KPROBE(read_entry, struct file *file)
{
	struct inode *inode = BPF_CORE_READ(file, f_inode);

	if (bpf_core_field_exists(inode->i_atime_sec)) {
		atime_sec = BPF_CORE_READ(inode, i_atime_sec);
		layout = 3;
	} else if (bpf_core_field_exists(((struct inode___mid *)inode)->__i_atime)) {
		atime_sec = BPF_CORE_READ((struct inode___mid *)inode, __i_atime.tv_sec);
		layout = 2;
	} else {
		atime_sec = BPF_CORE_READ((struct inode___old *)inode, i_atime.tv_sec);
		layout = 1;
	}
	has_dentry_op = bpf_core_field_exists(file->f_path.dentry->d_op);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
