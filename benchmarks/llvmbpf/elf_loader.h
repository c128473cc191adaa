/* The libbpf side of llvmbpf-host, kept apart from host.cpp because
 * linux/bpf.h and llvmbpf's ebpf_inst.h both define BPF_REG_0...BPF_REG_10. */
#ifndef LLVMBPF_HOST_ELF_LOADER_H
#define LLVMBPF_HOST_ELF_LOADER_H

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

struct LoadedMap {
	int fd;
	std::string name; // libbpf's (bpf(2) gets at most 15 bytes of it)
	uint32_t type, key_size, value_size, max_entries, flags;
	// BPF_MAP_UPDATE_ELEM calls libbpf made (initial .data/.rodata)
	std::vector<std::pair<std::vector<uint8_t>, std::vector<uint8_t> > >
		updates;
};

struct LoadedProgram {
	int fd;
	std::string name, section;
	uint32_t type;
	std::vector<uint64_t> insns; // relocated, as BPF_PROG_LOAD got them
};

struct LoadedObject {
	std::vector<LoadedMap> maps; // libbpf's order
	std::vector<LoadedProgram> programs;
};

/* Load an eBPF ELF with libbpf, this process answering its bpf(2) calls as
 * bpftime's syscall server does: fds are the lowest free ones, from fd_floor
 * up when it is above them. Throws std::runtime_error. */
LoadedObject load_elf_like_bpftime(const std::string &path, bool verbose,
				   int fd_floor = 0);

#endif
