/* libbpf loads the ELF; this process answers its bpf(2) calls the way
 * bpftime's syscall server does (runtime/syscall-server/syscall_context.cpp
 * in eunomia-bpf/bpftime): a map or a program gets a fake fd, a real fd on
 * /dev/null (bpftime_shm::open_fake_fd), so fds come in libbpf's order from
 * the lowest free one; programs arrive relocated (lddw src=1 imm=fd, src=2
 * imm=fd and the offset, subprograms appended). */
#include "elf_loader.h"

#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <dlfcn.h>
#include <fcntl.h>
#include <map>
#include <stdexcept>
#include <sys/syscall.h>
#include <unistd.h>

namespace
{

struct Loading {
	bool active = false;
	std::map<int, LoadedMap> maps; // every map created, by fd
	std::map<int, LoadedProgram> progs;
} g_loading;

bool g_verbose = false;
int g_fd_floor = 0;

int open_fake_fd()
{
	int fd = open("/dev/null", O_RDONLY);
	for (int tries = 5; fd >= 0 && fd <= 2 && --tries > 0;)
		fd = dup(fd);
	if (fd >= 0 && fd < g_fd_floor) { // the lowest free fd from the floor up
		int moved = fcntl(fd, F_DUPFD, g_fd_floor);
		close(fd);
		fd = moved;
	}
	return fd;
}

long answer_bpf(int cmd, union bpf_attr *attr)
{
	switch (cmd) {
	case BPF_MAP_CREATE: {
		int fd = open_fake_fd();
		if (fd < 0)
			return -1;
		// A probe's map closed earlier may have had this fd.
		std::string name(attr->map_name,
				 strnlen(attr->map_name, BPF_OBJ_NAME_LEN));
		g_loading.maps[fd] = LoadedMap{
			fd,
			name,
			attr->map_type,
			attr->key_size,
			attr->value_size,
			attr->max_entries,
			attr->map_flags,
			{}
		};
		return fd;
	}
	case BPF_MAP_UPDATE_ELEM: {
		auto it = g_loading.maps.find((int)attr->map_fd);
		if (it == g_loading.maps.end()) {
			errno = EBADF;
			return -1;
		}
		auto *k = (const uint8_t *)(uintptr_t)attr->key;
		auto *v = (const uint8_t *)(uintptr_t)attr->value;
		it->second.updates.emplace_back(
			std::vector<uint8_t>(k, k + it->second.key_size),
			std::vector<uint8_t>(v, v + it->second.value_size));
		return 0;
	}
	case BPF_MAP_FREEZE: // bpftime's syscall server ignores it too
		return 0;
	case BPF_PROG_LOAD: {
		int fd = open_fake_fd();
		if (fd < 0)
			return -1;
		auto *insns = (const uint64_t *)(uintptr_t)attr->insns;
		std::string name(attr->prog_name,
				 strnlen(attr->prog_name, BPF_OBJ_NAME_LEN));
		g_loading.progs[fd] = LoadedProgram{
			fd,
			name,
			"",
			attr->prog_type,
			std::vector<uint64_t>(insns, insns + attr->insn_cnt)
		};
		return fd;
	}
	default:
		// BPF_BTF_LOAD among others: libbpf then takes the kernel for
		// one without BTF and loads maps and programs without it.
		errno = EINVAL;
		return -1;
	}
}

int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	// Without -v the caller's one-line error says what failed.
	(void)level;
	if (!g_verbose)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

/* What bpf(2) made for the map or program libbpf knows by fd. */
template <typename T>
T made(const std::map<int, T> &by_fd, int fd, const char *name)
{
	auto it = by_fd.find(fd);
	if (it == by_fd.end())
		throw std::runtime_error(std::string("libbpf made ") + name +
					 " without bpf(2)");
	return it->second;
}

} // namespace

/* libbpf makes its bpf(2) calls through syscall(); defining it in the
 * executable interposes the C library's, as bpftime's LD_PRELOAD library
 * does. Everything but bpf(2) during a load passes through. */
extern "C" long syscall(long number, ...) noexcept
{
	va_list ap;
	va_start(ap, number);
	long a[6];
	for (auto &x : a)
		x = va_arg(ap, long);
	va_end(ap);
	if (number == SYS_bpf && g_loading.active)
		return answer_bpf((int)a[0], (union bpf_attr *)a[1]);
	using real_fn = long (*)(long, ...);
	static real_fn real = (real_fn)dlsym(RTLD_NEXT, "syscall");
	return real(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}

LoadedObject load_elf_like_bpftime(const std::string &path, bool verbose,
				   int fd_floor)
{
	g_verbose = verbose;
	g_fd_floor = fd_floor;
	libbpf_set_print(libbpf_log);
	// The object is never closed: that would close the maps' fake fds and
	// let later files take their numbers.
	bpf_object *obj = bpf_object__open_file(path.c_str(), nullptr);
	if (!obj)
		throw std::runtime_error("libbpf cannot open " + path + ": " +
					 strerror(errno));
	bpf_program *prog;
	bpf_object__for_each_program(prog, obj)
	{
		// Sections libbpf does not know (SEC("raw")) get a type, as a
		// bpftime user would set one.
		if (bpf_program__type(prog) == BPF_PROG_TYPE_UNSPEC)
			bpf_program__set_type(prog, BPF_PROG_TYPE_SOCKET_FILTER);
	}
	g_loading.active = true;
	int err = bpf_object__load(obj);
	g_loading.active = false;
	if (err)
		throw std::runtime_error("libbpf cannot load " + path + ": " +
					 strerror(-err));
	LoadedObject out;
	bpf_map *map;
	bpf_object__for_each_map(map, obj)
	{
		LoadedMap m = made(g_loading.maps, bpf_map__fd(map),
				   bpf_map__name(map));
		m.name = bpf_map__name(map);
		out.maps.push_back(std::move(m));
	}
	bpf_object__for_each_program(prog, obj)
	{
		LoadedProgram p = made(g_loading.progs, bpf_program__fd(prog),
				       bpf_program__name(prog));
		p.name = bpf_program__name(prog);
		p.section = bpf_program__section_name(prog);
		out.programs.push_back(std::move(p));
	}
	return out;
}
