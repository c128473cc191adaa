/* get_prandom_u32 (7), get_smp_processor_id (8), get_current_pid_tgid (14),
 * get_current_uid_gid (15), get_current_comm (16), get_numa_node_id (42). */
#include "common.h"

#define NRAND 16

struct identity {
	u64 pid_tgid;
	u64 uid_gid;
	u64 cpu;
	u64 numa;
	u64 comm_ret;
	u64 small_ret;
	char comm[16];
	char small[4];		/* get_current_comm with size 4 */
	u32 pad;
	u32 rand[NRAND];
};

SEC("raw") long identity(void *ctx)
{
	struct identity *id = ctx;
	id->pid_tgid = bpf_get_current_pid_tgid();
	id->uid_gid = bpf_get_current_uid_gid();
	id->cpu = bpf_get_smp_processor_id();
	id->numa = bpf_get_numa_node_id();
	id->comm_ret = bpf_get_current_comm(id->comm, sizeof(id->comm));
	id->small_ret = bpf_get_current_comm(id->small, sizeof(id->small));
	for (int i = 0; i < NRAND; i++)
		id->rand[i] = bpf_get_prandom_u32();
	return 0;
}
