/* llvmbpf-host: runs eBPF programs the way bpftime's runtime runs them,
 * through llvmbpf (bpftime's LLVM engine), with bpftime-shaped maps and
 * helpers (docs/testing.md, "bpftime's loader"). tests/test_llvmbpf.py loads
 * `ebpf-lto link --abi bpftime` objects with it; the timing mode (--repeat)
 * is for a benchmark driver.
 *
 * The ELF (--elf) is loaded by libbpf as bpftime's syscall server sees it:
 * this process answers libbpf's bpf(2) calls itself (elf_loader.cpp), so
 * maps get fds from open("/dev/null") in libbpf's order and programs arrive
 * relocated (lddw src=1 imm=fd, src=2 imm=fd + offset, subprograms appended).
 * How it runs:
 *   --engine jit   llvmbpf_vm::compile()
 *   --engine aot   llvmbpf_vm::do_aot_compile(), then load_aot_object() of
 *                  that object in a fresh vm (bpftime-aot compile + runtime)
 *   --load OBJ     load_aot_object() of a native object built elsewhere
 * Output: one JSON object on stdout (r0, memory or packet after, maps). */
#include "llvmbpf.hpp"

#include "elf_loader.h"

#include <llvm/Support/raw_ostream.h>
#include <spdlog/spdlog.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sched.h>
#include <sys/mman.h>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <vector>

namespace
{

/* The kernel's ABI numbers (linux/bpf.h, which cannot be included beside
 * llvmbpf's ebpf_inst.h). */
enum : uint32_t {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_PROG_TYPE_XDP = 6,
};
enum : uint64_t { BPF_ANY = 0, BPF_NOEXIST = 1, BPF_EXIST = 2 };
enum : int {
	BPF_FUNC_map_lookup_elem = 1,
	BPF_FUNC_map_update_elem = 2,
	BPF_FUNC_map_delete_elem = 3,
	BPF_FUNC_ktime_get_ns = 5,
	BPF_FUNC_trace_printk = 6,
	BPF_FUNC_get_prandom_u32 = 7,
	BPF_FUNC_get_smp_processor_id = 8,
	BPF_FUNC_get_current_pid_tgid = 14,
	BPF_FUNC_csum_diff = 28,
	BPF_FUNC_xdp_adjust_head = 44,
	BPF_FUNC_xdp_adjust_tail = 65,
};

struct Error : std::runtime_error {
	using std::runtime_error::runtime_error;
};

[[noreturn]] void fail(const std::string &msg)
{
	throw Error(msg);
}

std::vector<uint8_t> read_file(const std::string &path)
{
	std::ifstream f(path, std::ios::binary);
	if (!f)
		fail("cannot read " + path + ": " + strerror(errno));
	return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}


std::string hex(const uint8_t *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	std::string out;
	out.reserve(2 * n);
	for (size_t i = 0; i < n; i++) {
		out += digits[p[i] >> 4];
		out += digits[p[i] & 15];
	}
	return out;
}


std::string json_str(const std::string &s)
{
	std::string out = "\"";
	for (char c : s) {
		if (c == '"' || c == '\\')
			out += '\\', out += c;
		else if ((unsigned char)c < 0x20) {
			char buf[8];
			snprintf(buf, sizeof buf, "\\u%04x", c);
			out += buf;
		} else
			out += c;
	}
	return out + "\"";
}

/* ---------------- bpftime-shaped maps ---------------- */

/* How the runtime names a map to the code (ebpf-lto's --map-handle): the fd
 * itself, in the bpftime whose loader is this llvmbpf; or, in bpftime
 * before PR #344, map_ptr_by_fd's fd << 32 | 0xffffffff, which the map
 * helpers take apart again (runtime/src/bpftime_shm.cpp, bpf_helper.cpp). */
enum class HandleKind { shifted, fd };
HandleKind g_handle_kind = HandleKind::fd;
/* bpftime: its default HASH (fix_size_hash_map_impl) ignores BPF_NOEXIST and
 * BPF_EXIST and reports success even when full, and its csum_diff returns an
 * unfolded sum; kernel: Linux's rules (csum_diff as since 6.13). */
bool g_kernel_semantics = false;
uint32_t g_ncpus = 1;

constexpr uint64_t INVALID_MAP_PTR = ~0ull; // bpftime_shm.cpp's value

bool is_prime(size_t n)
{
	if (n < 2)
		return false;
	for (size_t d = 2; d * d <= n; d++)
		if (n % d == 0)
			return false;
	return true;
}

struct Map {
	int fd = -1;
	std::string name;
	uint32_t type = 0, key_size = 0, value_size = 0, max_entries = 0,
		 flags = 0;
	std::vector<uint8_t> data;
	// HASH: bpftime_hash_map's layout, slots of {u32 used, key, value}
	// with open addressing and linear probing over a prime bucket count.
	size_t buckets = 0, count = 0;

	void init()
	{
		switch (type) {
		case BPF_MAP_TYPE_ARRAY:
			// bpftime's array_map_impl: values value_size apart.
			data.assign((size_t)value_size * max_entries, 0);
			break;
		case BPF_MAP_TYPE_PERCPU_ARRAY:
			// per_cpu_array_map_impl: key-major, one value per cpu.
			data.assign((size_t)value_size * max_entries * g_ncpus,
				    0);
			break;
		case BPF_MAP_TYPE_HASH:
			buckets = max_entries;
			while (!is_prime(buckets))
				buckets++;
			data.assign(buckets * slot_size(), 0);
			break;
		default:
			break; // refused when a program is run with it
		}
	}
	bool supported() const
	{
		return type == BPF_MAP_TYPE_ARRAY ||
		       type == BPF_MAP_TYPE_PERCPU_ARRAY ||
		       type == BPF_MAP_TYPE_HASH;
	}
	size_t slot_size() const
	{
		return 4 + (size_t)key_size + value_size;
	}
	uint8_t *slot(size_t i)
	{
		return &data[i * slot_size()];
	}
	bool used(size_t i)
	{
		uint32_t u;
		memcpy(&u, slot(i), 4);
		return u != 0;
	}
	size_t home(const void *key) const
	{
		size_t h = 0;
		for (uint32_t i = 0; i < key_size; i++)
			h = h * 31 + ((const uint8_t *)key)[i];
		return h % buckets;
	}
	// The slot holding key, or the first empty slot of its probe run, or
	// buckets when the table is full without it.
	size_t probe(const void *key, bool &found)
	{
		size_t start = home(key), i = start;
		found = false;
		do {
			if (!used(i))
				return i;
			if (!memcmp(slot(i) + 4, key, key_size)) {
				found = true;
				return i;
			}
			i = (i + 1) % buckets;
		} while (i != start);
		return buckets;
	}
	int cpu() const
	{
		int c = sched_getcpu();
		return c < 0 ? 0 : c % (int)g_ncpus;
	}

	void *lookup(const void *key)
	{
		switch (type) {
		case BPF_MAP_TYPE_ARRAY: {
			uint32_t k;
			memcpy(&k, key, 4);
			return k < max_entries ? &data[(size_t)k * value_size] :
						 nullptr;
		}
		case BPF_MAP_TYPE_PERCPU_ARRAY: {
			uint32_t k;
			memcpy(&k, key, 4);
			return k < max_entries ?
				       &data[((size_t)k * g_ncpus + cpu()) *
					     value_size] :
				       nullptr;
		}
		case BPF_MAP_TYPE_HASH: {
			bool found;
			size_t i = probe(key, found);
			return found ? slot(i) + 4 + key_size : nullptr;
		}
		}
		return nullptr;
	}
	long update(const void *key, const void *value, uint64_t flags)
	{
		switch (type) {
		case BPF_MAP_TYPE_ARRAY:
		case BPF_MAP_TYPE_PERCPU_ARRAY: {
			if (flags > BPF_EXIST)
				return g_kernel_semantics ? -EINVAL : -1;
			uint32_t k;
			memcpy(&k, key, 4);
			// bpftime returns -1 with errno set; the kernel -errno.
			if (k >= max_entries)
				return g_kernel_semantics ? -E2BIG : -1;
			if (flags == BPF_NOEXIST)
				return g_kernel_semantics ? -EEXIST : -1;
			memcpy(lookup(key), value, value_size);
			return 0;
		}
		case BPF_MAP_TYPE_HASH: {
			bool found;
			size_t i = probe(key, found);
			if (g_kernel_semantics) {
				if (flags > BPF_EXIST)
					return -EINVAL;
				if (found && flags == BPF_NOEXIST)
					return -EEXIST;
				if (!found && flags == BPF_EXIST)
					return -ENOENT;
			}
			if (!found) {
				if (i == buckets || count >= max_entries)
					return g_kernel_semantics ? -E2BIG : 0;
				uint32_t one = 1;
				memcpy(slot(i), &one, 4);
				memcpy(slot(i) + 4, key, key_size);
				count++;
			}
			memcpy(slot(i) + 4 + key_size, value, value_size);
			return 0;
		}
		}
		return -EINVAL;
	}
	long remove(const void *key)
	{
		if (type != BPF_MAP_TYPE_HASH)
			return g_kernel_semantics ? -EINVAL : -1;
		bool found;
		size_t i = probe(key, found);
		if (!found)
			return g_kernel_semantics ? -ENOENT : 0;
		if (g_kernel_semantics) {
			// Backward-shift deletion keeps later keys of the probe
			// run reachable.
			size_t hole = i, j = i;
			for (;;) {
				j = (j + 1) % buckets;
				if (!used(j))
					break;
				size_t h = home(slot(j) + 4);
				bool movable = hole <= j ? (h <= hole || h > j) :
							   (h <= hole && h > j);
				if (movable) {
					memcpy(slot(hole), slot(j), slot_size());
					hole = j;
				}
			}
			memset(slot(hole), 0, slot_size());
		} else {
			// bpftime_hash_map::elem_delete empties the slot, which
			// cuts the probe run: keys after it may not be found.
			memset(slot(i), 0, 4);
		}
		count--;
		return 0;
	}
	// bpftime's map_val: the value of the first key get_next_key gives.
	void *first_value()
	{
		if (type == BPF_MAP_TYPE_HASH) {
			for (size_t i = 0; i < buckets; i++)
				if (used(i))
					return slot(i) + 4 + key_size;
			return nullptr;
		}
		uint32_t zero = 0;
		return max_entries ? lookup(&zero) : nullptr;
	}
};

std::map<int, std::unique_ptr<Map> > g_maps;

Map *map_by_handle(uint64_t handle)
{
	int fd = g_handle_kind == HandleKind::shifted ? (int)(handle >> 32) :
							(int)handle;
	auto it = g_maps.find(fd);
	return it == g_maps.end() ? nullptr : it->second.get();
}

// The names ebpf-lto's map dump uses; the others are refused before a run.
std::string type_name(uint32_t t)
{
	switch (t) {
	case BPF_MAP_TYPE_HASH: return "hash";
	case BPF_MAP_TYPE_ARRAY: return "array";
	case BPF_MAP_TYPE_PERCPU_ARRAY: return "percpu_array";
	default: return "type " + std::to_string(t);
	}
}

/* ---------------- lddw helpers (bpftime_shm.cpp's) ---------------- */

extern "C" uint64_t host_map_by_fd(uint32_t fd)
{
	if (!g_maps.count((int)fd))
		return INVALID_MAP_PTR;
	return g_handle_kind == HandleKind::shifted ?
		       ((uint64_t)fd << 32) | 0xffffffff :
		       fd;
}

extern "C" uint64_t host_map_val(uint64_t handle)
{
	Map *m = map_by_handle(handle);
	return m ? (uint64_t)(uintptr_t)m->first_value() : 0;
}

/* ---------------- helpers (bpftime's semantics, runtime/src/bpf_helper.cpp) ---------------- */

extern "C" uint64_t h_map_lookup_elem(uint64_t map, uint64_t key, uint64_t,
				      uint64_t, uint64_t)
{
	Map *m = map_by_handle(map);
	return m ? (uint64_t)(uintptr_t)m->lookup((void *)(uintptr_t)key) : 0;
}

extern "C" uint64_t h_map_update_elem(uint64_t map, uint64_t key,
				      uint64_t value, uint64_t flags, uint64_t)
{
	Map *m = map_by_handle(map);
	return m ? (uint64_t)m->update((void *)(uintptr_t)key,
				       (void *)(uintptr_t)value, flags) :
		   (uint64_t)-1;
}

extern "C" uint64_t h_map_delete_elem(uint64_t map, uint64_t key, uint64_t,
				      uint64_t, uint64_t)
{
	Map *m = map_by_handle(map);
	return m ? (uint64_t)m->remove((void *)(uintptr_t)key) : (uint64_t)-1;
}

extern "C" uint64_t h_ktime_get_ns(uint64_t, uint64_t, uint64_t, uint64_t,
				   uint64_t)
{
	return (uint64_t)std::chrono::duration_cast<std::chrono::nanoseconds>(
		       std::chrono::steady_clock::now().time_since_epoch())
		.count();
}

// The program's output goes to stderr: stdout carries the JSON result.
extern "C" uint64_t h_trace_printk(uint64_t fmt, uint64_t, uint64_t a3,
				   uint64_t a4, uint64_t a5)
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	fprintf(stderr, (const char *)(uintptr_t)fmt, a3, a4, a5);
#pragma GCC diagnostic pop
	return 0;
}

extern "C" uint64_t h_get_prandom_u32(uint64_t, uint64_t, uint64_t, uint64_t,
				      uint64_t)
{
	return (uint32_t)rand();
}

extern "C" uint64_t h_get_smp_processor_id(uint64_t, uint64_t, uint64_t,
					   uint64_t, uint64_t)
{
	int c = sched_getcpu();
	return c < 0 ? 0 : (uint64_t)c;
}

extern "C" uint64_t h_get_current_pid_tgid(uint64_t, uint64_t, uint64_t,
					   uint64_t, uint64_t)
{
	return (uint64_t)getpid() << 32 | (uint32_t)gettid();
}

/* Linux's bpf_csum_diff (6.13 and later): the helper library's own,
 * helper_bitcode/src/checksum.c, compiled into this host, so that an object
 * that calls the helper out of line gets what an inlined one computes. */
extern "C" uint64_t _bpf_helper_ext_0028(uint64_t, uint64_t, uint64_t,
					 uint64_t, uint64_t);

/* bpftime_csum_diff: the sum, not folded, of to's 16-bit words and the
 * complements of from's, starting at seed; -EINVAL for sizes that are not
 * multiples of 4 or a sum that overflows a signed 32-bit int. */
extern "C" uint64_t h_csum_diff(uint64_t from, uint64_t from_size, uint64_t to,
				uint64_t to_size, uint64_t seed)
{
	if (g_kernel_semantics)
		return _bpf_helper_ext_0028(from, from_size, to, to_size, seed);
	int fs = (int)from_size, ts = (int)to_size;
	if (fs % 4 || ts % 4)
		return (uint64_t)(int64_t)-EINVAL;
	int sum = (int)seed;
	auto words = [](uint64_t p, int n, bool invert, int &acc) {
		for (int i = 0; i < n / 2; i++) {
			uint16_t w;
			memcpy(&w, (const uint8_t *)(uintptr_t)p + 2 * i, 2);
			acc += (uint16_t)(invert ? ~w : w);
		}
	};
	if (to)
		words(to, ts, false, sum);
	if (from)
		words(from, fs, true, sum);
	return (uint64_t)(int64_t)(sum < 0 ? -EINVAL : sum);
}

struct xdp_md_userspace {
	uint64_t data, data_end;
	uint32_t data_meta, ingress_ifindex, rx_queue_index, egress_ifindex;
	uint64_t buffer_start, buffer_end;
};

/* The kernel's struct xdp_md: what bytecode built against the kernel's
 * headers reads, since llvmbpf does not rewrite context accesses. Its 32-bit
 * fields hold real pointers because the packet buffer is mapped below 4 GiB. */
struct xdp_md_kernel {
	uint32_t data, data_end, data_meta, ingress_ifindex, rx_queue_index,
		egress_ifindex;
};

enum class CtxKind { raw, xdp, xdp_kernel };
CtxKind g_ctx_kind = CtxKind::raw;
// The buffer around the packet: the bounds the xdp helpers keep to.
uint64_t g_buffer_start = 0, g_buffer_end = 0;

/* data and data_end of either xdp context */
struct XdpView {
	uint64_t data, data_end;
};

template <CtxKind K> XdpView xdp_get(uint64_t ctx)
{
	if constexpr (K == CtxKind::xdp_kernel) {
		auto *x = (xdp_md_kernel *)(uintptr_t)ctx;
		return { x->data, x->data_end };
	}
	auto *x = (xdp_md_userspace *)(uintptr_t)ctx;
	return { x->data, x->data_end };
}

template <CtxKind K> void xdp_set(uint64_t ctx, XdpView v)
{
	if constexpr (K == CtxKind::xdp_kernel) {
		auto *x = (xdp_md_kernel *)(uintptr_t)ctx;
		x->data = (uint32_t)v.data;
		x->data_meta = (uint32_t)v.data; // no metadata
		x->data_end = (uint32_t)v.data_end;
		return;
	}
	auto *x = (xdp_md_userspace *)(uintptr_t)ctx;
	x->data = v.data;
	x->data_end = v.data_end;
}

/* bpftime_xdp_adjust_head, except that moving data below the buffer fails
 * (bpftime then memmoves the packet past buffer_start, which can write
 * outside the buffer) */
template <CtxKind K>
uint64_t h_xdp_adjust_head(uint64_t ctx, uint64_t offset, uint64_t, uint64_t,
			   uint64_t)
{
	XdpView v = xdp_get<K>(ctx);
	uint64_t data = v.data + (int64_t)(int)offset;
	if (data > v.data_end - 14 || data > g_buffer_end ||
	    data < g_buffer_start)
		return (uint64_t)(int64_t)-EINVAL;
	v.data = data;
	xdp_set<K>(ctx, v);
	return 0;
}

template <CtxKind K>
uint64_t h_xdp_adjust_tail(uint64_t ctx, uint64_t delta, uint64_t, uint64_t,
			   uint64_t)
{
	XdpView v = xdp_get<K>(ctx);
	uint64_t end = v.data_end + (int64_t)(int)delta;
	if (end < v.data || end < g_buffer_start || end > g_buffer_end)
		return (uint64_t)(int64_t)-EINVAL;
	v.data_end = end;
	xdp_set<K>(ctx, v);
	return 0;
}

struct HelperDef {
	int id;
	const char *name;
	void *fn;
};

const HelperDef HELPERS[] = {
	{ BPF_FUNC_map_lookup_elem, "bpf_map_lookup_elem",
	  (void *)h_map_lookup_elem },
	{ BPF_FUNC_map_update_elem, "bpf_map_update_elem",
	  (void *)h_map_update_elem },
	{ BPF_FUNC_map_delete_elem, "bpf_map_delete_elem",
	  (void *)h_map_delete_elem },
	{ BPF_FUNC_ktime_get_ns, "bpf_ktime_get_ns", (void *)h_ktime_get_ns },
	{ BPF_FUNC_trace_printk, "bpf_trace_printk", (void *)h_trace_printk },
	{ BPF_FUNC_get_prandom_u32, "bpf_get_prandom_u32",
	  (void *)h_get_prandom_u32 },
	{ BPF_FUNC_get_smp_processor_id, "bpf_get_smp_processor_id",
	  (void *)h_get_smp_processor_id },
	{ BPF_FUNC_get_current_pid_tgid, "bpf_get_current_pid_tgid",
	  (void *)h_get_current_pid_tgid },
	{ BPF_FUNC_csum_diff, "bpf_csum_diff", (void *)h_csum_diff },
	// the xdp helpers: setup_vm picks the context's version
	{ BPF_FUNC_xdp_adjust_head, "bpf_xdp_adjust_head", nullptr },
	{ BPF_FUNC_xdp_adjust_tail, "bpf_xdp_adjust_tail", nullptr },
};

/* An xdp helper for the context kind: the bench's driver holds programs of
 * both kinds in one process, so the kind is bound when a program is compiled. */
void *xdp_helper(int id, CtxKind kind)
{
	bool head = id == BPF_FUNC_xdp_adjust_head;
	if (kind == CtxKind::xdp_kernel)
		return head ? (void *)h_xdp_adjust_head<CtxKind::xdp_kernel> :
			      (void *)h_xdp_adjust_tail<CtxKind::xdp_kernel>;
	return head ? (void *)h_xdp_adjust_head<CtxKind::xdp> :
		      (void *)h_xdp_adjust_tail<CtxKind::xdp>;
}

/* Register the helpers and the lddw helpers the way bpftime_prog does
 * (bpftime_prog.cpp: set_lddw_helpers(map_ptr_by_fd, nullptr, map_val, ...)) */
void setup_vm(bpftime::llvmbpf_vm &vm)
{
	for (auto &h : HELPERS)
		if (vm.register_external_function(
			    h.id, h.name, h.fn ? h.fn : xdp_helper(h.id, g_ctx_kind)))
			fail("cannot register helper " + std::string(h.name) +
			     ": " + vm.get_error_message());
	vm.set_lddw_helpers(host_map_by_fd, nullptr, host_map_val, nullptr,
			    nullptr);
}

/* ---------------- programs ---------------- */

struct Program {
	int fd = -1; // in bpftime's table, where it has one
	std::string name, section;
	uint32_t type = 0;
	std::vector<ebpf_inst> insns;
};


std::vector<Program> g_programs;
bool g_verbose = false;

const Program &find_program(const std::string &name)
{
	for (auto &p : g_programs)
		if (p.name == name)
			return p;
	fail("no program named " + name);
}

void check_maps_supported()
{
	for (auto &[fd, m] : g_maps)
		if (!m->supported())
			fail("map " + m->name + " has type " +
			     std::to_string(m->type) +
			     ", which this host does not implement");
}

CtxKind parse_ctx_kind(const std::string &kind)
{
	if (kind == "raw")
		return CtxKind::raw;
	if (kind == "xdp")
		return CtxKind::xdp;
	if (kind == "xdp-kernel")
		return CtxKind::xdp_kernel;
	fail("--ctx is raw, xdp or xdp-kernel");
}

void load_elf(const std::string &path, int fd_floor = 0)
{
	LoadedObject obj;
	try {
		obj = load_elf_like_bpftime(path, g_verbose, fd_floor);
	} catch (const std::runtime_error &e) {
		fail(e.what());
	}
	for (auto &lm : obj.maps) {
		auto m = std::make_unique<Map>();
		m->fd = lm.fd;
		m->name = lm.name;
		m->type = lm.type;
		m->key_size = lm.key_size;
		m->value_size = lm.value_size;
		m->max_entries = lm.max_entries;
		m->flags = lm.flags;
		m->init();
		if (m->supported())
			for (auto &[k, v] : lm.updates)
				m->update(k.data(), v.data(), BPF_ANY);
		g_maps[lm.fd] = std::move(m);
	}
	for (auto &lp : obj.programs) {
		Program p;
		p.fd = lp.fd;
		p.name = lp.name;
		p.section = lp.section;
		p.type = lp.type;
		p.insns.resize(lp.insns.size());
		memcpy(p.insns.data(), lp.insns.data(), lp.insns.size() * 8);
		g_programs.push_back(std::move(p));
	}
}

/* ---------------- compiling ---------------- */

/* Run f with file descriptor fd sent to a temporary file; return what was
 * written there. LLVM reports unresolved symbols on stderr only. */
std::string capture_fd(int fd, const std::function<void()> &f)
{
	fflush(nullptr);
	FILE *tmp = tmpfile();
	if (!tmp)
		fail("tmpfile: " + std::string(strerror(errno)));
	int saved = dup(fd);
	dup2(fileno(tmp), fd);
	try {
		f();
	} catch (...) {
		fflush(nullptr);
		llvm::errs().flush();
		llvm::outs().flush();
		dup2(saved, fd);
		close(saved);
		fclose(tmp);
		throw;
	}
	fflush(nullptr);
	llvm::errs().flush();
	llvm::outs().flush();
	dup2(saved, fd);
	close(saved);
	std::string out;
	rewind(tmp);
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, tmp)) > 0)
		out.append(buf, n);
	fclose(tmp);
	return out;
}

std::string first_line_with(const std::string &text, const char *needle)
{
	std::istringstream in(text);
	std::string line, first;
	while (std::getline(in, line)) {
		if (first.empty() && !line.empty())
			first = line;
		if (line.find(needle) != std::string::npos)
			return line;
	}
	return first;
}

using Entry = bpftime::precompiled_ebpf_function;

struct Compiled {
	std::unique_ptr<bpftime::llvmbpf_vm> vm; // owns the code
	Entry fn = nullptr;
	double compile_ms = 0;
};

std::vector<uint8_t> aot_object(const Program &p, const std::string &emit_llvm)
{
	bpftime::llvmbpf_vm vm;
	setup_vm(vm);
	if (vm.load_code(p.insns.data(), p.insns.size() * 8))
		fail("llvmbpf refused " + p.name + ": " +
		     vm.get_error_message());
	std::optional<std::vector<uint8_t> > obj;
	if (emit_llvm.empty()) {
		obj = vm.do_aot_compile(false);
	} else {
		// do_aot_compile(true) prints the module, before optimization,
		// on stdout.
		std::string ir = capture_fd(1, [&] {
			obj = vm.do_aot_compile(true);
		});
		std::ofstream(emit_llvm) << ir;
	}
	if (!obj)
		fail("llvmbpf AOT of " + p.name + " failed: " +
		     vm.get_error_message());
	return *obj;
}

Compiled load_object(const std::vector<uint8_t> &obj, const std::string &what)
{
	Compiled c;
	c.vm = std::make_unique<bpftime::llvmbpf_vm>();
	setup_vm(*c.vm);
	std::optional<Entry> fn;
	auto t0 = std::chrono::steady_clock::now();
	std::string log = capture_fd(2, [&] {
		fn = c.vm->load_aot_object(obj);
	});
	c.compile_ms = std::chrono::duration<double, std::milli>(
			       std::chrono::steady_clock::now() - t0)
			       .count();
	if (!fn) {
		std::string why = first_line_with(log, "Symbols not found");
		fail("load_aot_object(" + what + ") failed: " +
		     c.vm->get_error_message() + (why.empty() ? "" : ": ") +
		     why);
	}
	c.fn = *fn;
	return c;
}

// --emit-obj: the object llvmbpf's AOT made, where one is asked for
void write_object(const std::string &path, const std::vector<uint8_t> &obj)
{
	if (path.empty())
		return;
	std::ofstream f(path, std::ios::binary);
	f.write((const char *)obj.data(), obj.size());
	if (!f)
		fail("cannot write " + path);
}

Compiled compile(const Program &p, const std::string &engine,
		 const std::string &emit_obj, const std::string &emit_llvm)
{
	if (engine == "aot") {
		auto t0 = std::chrono::steady_clock::now();
		auto obj = aot_object(p, emit_llvm);
		double aot_ms = std::chrono::duration<double, std::milli>(
					std::chrono::steady_clock::now() - t0)
					.count();
		write_object(emit_obj, obj);
		Compiled c = load_object(obj, "llvmbpf's AOT of " + p.name);
		c.compile_ms += aot_ms;
		return c;
	}
	Compiled c;
	c.vm = std::make_unique<bpftime::llvmbpf_vm>();
	setup_vm(*c.vm);
	if (c.vm->load_code(p.insns.data(), p.insns.size() * 8))
		fail("llvmbpf refused " + p.name + ": " +
		     c.vm->get_error_message());
	auto t0 = std::chrono::steady_clock::now();
	auto fn = c.vm->compile();
	c.compile_ms = std::chrono::duration<double, std::milli>(
			       std::chrono::steady_clock::now() - t0)
			       .count();
	if (!fn)
		fail("llvmbpf JIT of " + p.name + " failed: " +
		     c.vm->get_error_message());
	c.fn = *fn;
	return c;
}

/* ---------------- running ---------------- */

constexpr size_t HEADROOM = 256, TAILROOM = 256; // as `ebpf-lto run`

struct Run {
	std::vector<uint8_t> input; // the memory, or the packet
	std::vector<uint8_t> mem;   // raw: what the program works on
	uint8_t *buf = nullptr;	    // xdp: headroom, packet, tailroom
	size_t buf_size = 0;
	xdp_md_userspace uctx{};
	xdp_md_kernel kctx{};

	void prepare()
	{
		if (g_ctx_kind == CtxKind::raw)
			return;
		buf_size = HEADROOM + input.size() + TAILROOM;
		int flags = MAP_PRIVATE | MAP_ANONYMOUS;
		if (g_ctx_kind == CtxKind::xdp_kernel)
			flags |= MAP_32BIT;
		void *p = mmap(nullptr, buf_size, PROT_READ | PROT_WRITE, flags,
			       -1, 0);
		if (p == MAP_FAILED)
			fail("cannot map the packet buffer: " +
			     std::string(strerror(errno)));
		buf = (uint8_t *)p;
		g_buffer_start = (uint64_t)(uintptr_t)buf;
		g_buffer_end = g_buffer_start + buf_size;
	}
	void reset()
	{
		if (g_ctx_kind == CtxKind::raw) {
			mem = input;
			return;
		}
		memset(buf, 0, HEADROOM);
		memcpy(buf + HEADROOM, input.data(), input.size());
		memset(buf + HEADROOM + input.size(), 0, TAILROOM);
		uint64_t data = g_buffer_start + HEADROOM;
		uint64_t end = data + input.size();
		if (g_ctx_kind == CtxKind::xdp_kernel)
			kctx = xdp_md_kernel{ (uint32_t)data, (uint32_t)end,
					      (uint32_t)data, 1, 0, 0 };
		else
			uctx = xdp_md_userspace{ data, end, 0, 1, 0, 0,
						 g_buffer_start, g_buffer_end };
	}
	uint64_t call(Entry fn)
	{
		switch (g_ctx_kind) {
		case CtxKind::xdp:
			return fn(&uctx, sizeof uctx);
		case CtxKind::xdp_kernel:
			return fn(&kctx, sizeof kctx);
		default:
			return fn(mem.empty() ? nullptr : mem.data(), mem.size());
		}
	}
	std::string output()
	{
		if (g_ctx_kind == CtxKind::raw)
			return hex(mem.data(), mem.size());
		XdpView v = g_ctx_kind == CtxKind::xdp ?
				    xdp_get<CtxKind::xdp>((uint64_t)(uintptr_t)&uctx) :
				    xdp_get<CtxKind::xdp_kernel>(
					    (uint64_t)(uintptr_t)&kctx);
		if (v.data < g_buffer_start || v.data > v.data_end ||
		    v.data_end > g_buffer_end)
			fail("the program left data/data_end outside the buffer");
		return hex(buf + (v.data - g_buffer_start), v.data_end - v.data);
	}
};

std::string maps_json()
{
	std::string out = "{";
	bool first = true;
	for (auto &[fd, m] : g_maps) {
		out += first ? "" : ", ";
		first = false;
		out += json_str(m->name) + ": {\"fd\": " + std::to_string(fd) +
		       ", \"type\": \"" + type_name(m->type) +
		       "\", \"key_size\": " + std::to_string(m->key_size) +
		       ", \"value_size\": " + std::to_string(m->value_size) +
		       ", \"max_entries\": " + std::to_string(m->max_entries) +
		       ", \"entries\": [";
		std::vector<std::pair<std::string, std::string> > entries;
		if (m->type == BPF_MAP_TYPE_ARRAY ||
		    m->type == BPF_MAP_TYPE_PERCPU_ARRAY) {
			size_t per_key = (size_t)m->value_size *
					 (m->type == BPF_MAP_TYPE_ARRAY ?
						  1 :
						  g_ncpus);
			for (uint32_t k = 0; k < m->max_entries; k++) {
				uint8_t key[4];
				memcpy(key, &k, 4);
				entries.emplace_back(
					hex(key, 4),
					hex(&m->data[k * per_key], per_key));
			}
		} else if (m->type == BPF_MAP_TYPE_HASH) {
			for (size_t i = 0; i < m->buckets; i++)
				if (m->used(i))
					entries.emplace_back(
						hex(m->slot(i) + 4,
						    m->key_size),
						hex(m->slot(i) + 4 +
							    m->key_size,
						    m->value_size));
			std::sort(entries.begin(), entries.end());
		}
		for (size_t i = 0; i < entries.size(); i++)
			out += std::string(i ? ", " : "") + "{\"key\": \"" +
			       entries[i].first + "\", \"value\": \"" +
			       entries[i].second + "\"}";
		out += "]}";
	}
	return out + "}";
}

const char *USAGE =
	"usage: llvmbpf-host --elf FILE [options]\n"
	"  --elf FILE          eBPF ELF, loaded by libbpf as bpftime's syscall server does\n"
	"  --program NAME      program to run (default: the first)\n"
	"  --engine jit|aot    llvmbpf's compile() or do_aot_compile()+load_aot_object() (default aot)\n"
	"  --load OBJ          run this native object through load_aot_object() instead\n"
	"  --emit-obj FILE     with --engine aot: write llvmbpf's object\n"
	"  --emit-llvm FILE    with --engine aot: write llvmbpf's IR (before optimization)\n"
	"  --compile-only      with --engine aot: write --emit-llvm and --emit-obj, and\n"
	"                      neither load nor run the program (bpftime-aot compile)\n"
	"  --ctx raw|xdp|xdp-kernel  r1 = the memory; bpftime's struct xdp_md_userspace\n"
	"                      around it; or the kernel's struct xdp_md (32-bit fields,\n"
	"                      buffer below 4 GiB). Default for xdp programs: xdp-kernel\n"
	"                      with --engine, xdp with --load (ebpf-lto's objects)\n"
	"  --mem FILE          the memory or packet (default: empty)\n"
	"  --setup NAME        run program NAME (JIT) once with (NULL, 0) first\n"
	"  --handle fd|shifted a map's handle: the fd (default) or fd<<32|0xffffffff (older bpftime)\n"
	"  --semantics bpftime|kernel  map update/delete rules and csum_diff's result:\n"
	"                      bpftime's helpers or Linux's (default bpftime)\n"
	"  --ncpus N           copies per per-cpu map value (default 1)\n"
	"  --repeat N          after the checked call, 5 rounds of N timed calls (input\n"
	"                      reset before each); ns per call net of the reset, best round\n"
	"  --fd-floor N        maps and programs get the lowest free fds from N up (default:\n"
	"                      the lowest free), as the bench's library gives a mode's\n"
	"  --list              print the programs (with their instructions as loaded: maps\n"
	"                      relocated to fds) and maps, and exit\n"
	"  -v                  libbpf's and llvmbpf's logs on stderr\n";

uint64_t parse_count(const std::string &opt, const std::string &text)
{
	errno = 0;
	char *end;
	uint64_t v = strtoull(text.c_str(), &end, 10);
	if (text.empty() || *end || errno || text[0] == '-')
		fail(opt + " wants a number, got " + text);
	return v;
}

[[maybe_unused]] int run(int argc, char **argv) // the host's main
{
	std::string elf, program, engine = "aot", load, emit_obj, emit_llvm,
		ctx_kind, mem, setup, handle = "fd", semantics = "bpftime",
		ncpus = "1", repeat_text = "0", fd_floor = "0";
	// The options that take a value, and where it goes.
	const std::map<std::string, std::string *> valued = {
		{ "--elf", &elf },	       { "--program", &program },
		{ "--engine", &engine },       { "--load", &load },
		{ "--emit-obj", &emit_obj },   { "--emit-llvm", &emit_llvm },
		{ "--ctx", &ctx_kind },	       { "--mem", &mem },
		{ "--setup", &setup },	       { "--handle", &handle },
		{ "--semantics", &semantics }, { "--ncpus", &ncpus },
		{ "--repeat", &repeat_text },  { "--fd-floor", &fd_floor },
	};
	bool list = false, compile_only = false;
	for (int i = 1; i < argc; i++) {
		std::string a = argv[i];
		if (auto it = valued.find(a); it != valued.end()) {
			if (i + 1 >= argc)
				fail(a + " needs a value");
			*it->second = argv[++i];
		} else if (a == "--list")
			list = true;
		else if (a == "--compile-only")
			compile_only = true;
		else if (a == "-v")
			g_verbose = true;
		else if (a == "-h" || a == "--help") {
			fputs(USAGE, stdout);
			return 0;
		} else
			fail("unknown option " + a + " (--help lists them)");
	}
	if (handle != "shifted" && handle != "fd")
		fail("--handle is fd or shifted");
	g_handle_kind = handle == "fd" ? HandleKind::fd : HandleKind::shifted;
	if (semantics != "bpftime" && semantics != "kernel")
		fail("--semantics is bpftime or kernel");
	g_kernel_semantics = semantics == "kernel";
	g_ncpus = (uint32_t)parse_count("--ncpus", ncpus);
	if (!g_ncpus)
		fail("--ncpus must be at least 1");
	uint64_t repeat = parse_count("--repeat", repeat_text);
	uint64_t first_fd = parse_count("--fd-floor", fd_floor);
	if (first_fd > 65536)
		fail("--fd-floor is 0 to 65536");
	if (engine != "jit" && engine != "aot")
		fail("--engine is jit or aot");
	if (elf.empty())
		fail("give --elf: the object whose maps and programs bpftime would load");

	// llvmbpf logs through spdlog's default logger, on stdout: move it to
	// stderr so that stdout is only the result.
	auto logger = spdlog::stderr_color_mt("llvmbpf");
	spdlog::set_default_logger(logger);
	spdlog::set_level(g_verbose ? spdlog::level::debug :
				      spdlog::level::off);

	// The ELF first, before this process opens anything else, so its maps
	// get the fds bpftime's loader would give them.
	if (!elf.empty())
		load_elf(elf, (int)first_fd);
	if (list) {
		std::string out = "{\"programs\": [";
		for (size_t i = 0; i < g_programs.size(); i++)
			out += std::string(i ? ", " : "") + "{\"name\": " +
			       json_str(g_programs[i].name) +
			       ", \"fd\": " + std::to_string(g_programs[i].fd) +
			       ", \"section\": " +
			       json_str(g_programs[i].section) +
			       ", \"type\": " +
			       std::to_string(g_programs[i].type) +
			       ", \"insns\": " +
			       std::to_string(g_programs[i].insns.size()) +
			       ", \"code\": \"" +
			       hex((const uint8_t *)g_programs[i].insns.data(),
				   g_programs[i].insns.size() * 8) +
			       "\"}";
		printf("%s], \"maps\": %s}\n", out.c_str(), maps_json().c_str());
		return 0;
	}
	check_maps_supported();
	const Program *prog = nullptr;
	if (!program.empty())
		prog = &find_program(program);
	else if (!g_programs.empty())
		prog = &g_programs.front();

	// Before compiling: the xdp helpers a program gets depend on it.
	if (ctx_kind.empty()) {
		bool xdp = prog && (prog->section.rfind("xdp", 0) == 0 ||
				    prog->type == BPF_PROG_TYPE_XDP);
		// llvmbpf runs the bytecode as built, against the kernel's
		// struct; an object from ebpf-lto reads bpftime's.
		g_ctx_kind = !xdp ? CtxKind::raw :
			     load.empty() ? CtxKind::xdp_kernel :
					    CtxKind::xdp;
	} else
		g_ctx_kind = parse_ctx_kind(ctx_kind);
	if (compile_only) {
		if (!load.empty() || engine != "aot" || !prog)
			fail("--compile-only compiles a program with --engine aot");
		write_object(emit_obj, aot_object(*prog, emit_llvm));
		printf("{\"program\": %s, \"engine\": \"aot\"}\n",
		       json_str(prog->name).c_str());
		return 0;
	}
	if (!setup.empty()) {
		Compiled s = compile(find_program(setup), "jit", "", "");
		s.fn(nullptr, 0);
	}

	Compiled c;
	std::string what;
	if (!load.empty()) {
		c = load_object(read_file(load), load);
		what = load;
	} else {
		if (!prog)
			fail("no program to run");
		c = compile(*prog, engine, emit_obj, emit_llvm);
		what = prog->name;
	}

	Run r;
	if (!mem.empty())
		r.input = read_file(mem);
	r.prepare();
	r.reset();
	uint64_t r0 = r.call(c.fn);
	std::string data = r.output();
	std::string maps = maps_json();

	std::string timing;
	if (repeat) {
		// Reset the input before every call, as `ebpf-lto bench`'s
		// driver does for xdp contexts. Rounds alternate a loop of
		// resets alone and a loop of resets and calls; the minimum of
		// each over the rounds keeps out most of what other load on
		// the machine adds.
		using clock = std::chrono::steady_clock;
		auto per_call = [&](clock::time_point t0, clock::time_point t1) {
			return std::chrono::duration<double, std::nano>(t1 - t0)
				       .count() /
			       repeat;
		};
		double reset_ns = 1e300, total_ns = 1e300;
		uint64_t sink = 0;
		for (int round = 0; round < 5; round++) {
			auto t0 = clock::now();
			for (uint64_t i = 0; i < repeat; i++) {
				r.reset();
				asm volatile("" ::: "memory");
			}
			auto t1 = clock::now();
			for (uint64_t i = 0; i < repeat; i++) {
				r.reset();
				sink += r.call(c.fn);
			}
			auto t2 = clock::now();
			reset_ns = std::min(reset_ns, per_call(t0, t1));
			total_ns = std::min(total_ns, per_call(t1, t2));
		}
		asm volatile("" ::"r"(sink));
		char buf[160];
		snprintf(buf, sizeof buf,
			 ", \"calls\": %" PRIu64
			 ", \"ns_per_call\": %.2f, \"reset_ns\": %.2f",
			 repeat, total_ns - reset_ns, reset_ns);
		timing = buf;
	}
	char head[128];
	snprintf(head, sizeof head, "\"r0\": %" PRIu64 ", \"compile_ms\": %.1f",
		 r0, c.compile_ms);
	printf("{\"program\": %s, \"engine\": \"%s\", %s, \"data\": \"%s\", \"maps\": %s%s}\n",
	       json_str(what).c_str(), load.empty() ? engine.c_str() : "load",
	       head, data.c_str(), maps.c_str(), timing.c_str());
	return 0;
}

} // namespace

/* ---------------- the bench's library (libllvmbpf-bench.so) ---------------- */

/* `ebpf-lto bench`'s driver (benchmarks/driver.c) dlopens this file built
 * as a shared library and calls what llvmbpf compiled directly, as it calls
 * every other mode. Each call loads the ELF again, so each mode has maps of
 * its own, their fds the lowest free from fd_floor up (where an --abi
 * bpftime object linked for those fds finds them); the setup program, if
 * any, fills them. engine: jit, aot, or load:OBJECT. Returns the entry,
 * uint64_t (void *ctx, uint64_t len), or NULL with the reason in why. */
extern "C" void *llvmbpf_bench_prepare(const char *elf, const char *program,
				       const char *setup, const char *engine,
				       const char *ctx, const char *semantics,
				       int fd_floor, uint64_t buffer_start,
				       uint64_t buffer_end, char *why,
				       size_t why_len)
{
	static std::vector<Compiled> keep; // the code lives as the process does
	try {
		if (!spdlog::get("llvmbpf")) {
			spdlog::set_default_logger(
				spdlog::stderr_color_mt("llvmbpf"));
			spdlog::set_level(spdlog::level::off);
		}
		std::string sem = semantics, eng = engine;
		if (sem != "bpftime" && sem != "kernel")
			fail("semantics is bpftime or kernel");
		g_kernel_semantics = sem == "kernel";
		g_ctx_kind = parse_ctx_kind(ctx);
		g_buffer_start = buffer_start;
		g_buffer_end = buffer_end;
		g_programs.clear();
		load_elf(elf, fd_floor);
		check_maps_supported();
		if (setup && *setup) {
			Compiled s = compile(find_program(setup), "jit", "", "");
			s.fn(nullptr, 0);
		}
		if (eng.rfind("load:", 0) == 0)
			keep.push_back(load_object(read_file(eng.substr(5)),
						   eng.substr(5)));
		else if (eng == "jit" || eng == "aot")
			keep.push_back(compile(find_program(program), eng, "", ""));
		else
			fail("engine is jit, aot or load:OBJECT");
		return (void *)keep.back().fn;
	} catch (const std::exception &e) {
		snprintf(why, why_len, "%s", e.what());
		return nullptr;
	}
}

#ifndef LLVMBPF_BENCH_LIBRARY
int main(int argc, char **argv)
{
	try {
		return run(argc, argv);
	} catch (const std::exception &e) {
		fflush(stdout);
		fprintf(stderr, "llvmbpf-host: error: %s\n", e.what());
		return 2;
	}
}
#endif
