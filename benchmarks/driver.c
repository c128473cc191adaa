/* The native timing driver of `ebpf-lto bench` (inliner/tools/bench/driver.py).
 *
 * Built at bench time (cc -O2 driver.c -ldl). It loads every mode of one
 * benchmark into this one process, checks that each gives the same answer,
 * then times them: no Python runs between calls.
 *
 *   driver CONFIG
 *
 * CONFIG is a text file, one setting a line:
 *
 *   input PATH          the packet (type xdp) or the memory (type raw), raw bytes
 *   type raw|xdp        r1 = the memory and r2 = its length, or r1 = a
 *                       struct xdp_md_userspace around the packet (docs/abi.md)
 *   restore 0|1         copy the input back before every call (programs that
 *                       change their input); xdp contexts are always reset
 *   reps N              timed repetitions per mode
 *   rep_ms F            time one repetition of one mode should take
 *   warmup_ms F         time each mode runs before it is measured
 *   quick 0|1           one call per mode: the check only, no timing
 *   load_timeout S      seconds DPDK's validator may take (default 5)
 *   dpdk_lib NAME       the library to dlopen (default librte_bpf.so.23)
 *   llvmbpf_lib PATH    libllvmbpf-bench.so (inliner/tools/llvmbpf.py builds it)
 *   llvmbpf_semantics bpftime|kernel
 *                       its helpers' rules (default kernel: Linux's, as the twin's)
 *   mode NAME so PATH ENTRY SETUP
 *                       a shared object exporting `uint64_t ENTRY(void *, uint64_t)`;
 *                       SETUP (or -) is called once with (NULL, 0) before the check
 *   mode NAME dpdk-interp|dpdk-jit INSNS HELPERS_SO
 *                       DPDK's librte_bpf: INSNS is the program's raw eBPF
 *                       instructions; helper ids in `call` are indexes into the
 *                       symbol table built from HELPERS_SO's _bpf_helper_ext_NNNN
 *   mode NAME llvmbpf ELF PROGRAM SETUP ENGINE CTX FD_FLOOR
 *                       bpftime's engine: llvmbpf_bench_prepare of the library
 *                       loads ELF's maps (fds from FD_FLOOR up, or the lowest
 *                       free with 0), runs SETUP (or -), and compiles PROGRAM
 *                       with ENGINE jit|aot, or loads ENGINE load:OBJECT through
 *                       load_aot_object; the driver calls the code it returns.
 *                       CTX raw|xdp|xdp-kernel: xdp-kernel is the kernel's
 *                       struct xdp_md (32-bit pointers: the packet buffer is
 *                       mapped below 4 GiB), which llvmbpf's bytecode reads
 *
 * Output, one fact a line:
 *
 *   refused NAME REASON       the mode could not be loaded (DPDK's log follows on stderr)
 *   check NAME R0 OUT         r0 (hex) and the memory or packet after one call (hex)
 *   calls NAME N              calls per timed repetition
 *   rep I NAME NS             mean ns per call in repetition I
 *   harness NS                the loop's own cost per call (input reset and an
 *                             indirect call of an empty function)
 *
 * Repetitions go round-robin over the modes, the first mode rotating, so
 * that frequency drift and other load hit every mode alike.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "abi.h" /* struct xdp_md_userspace, the packet's head- and tailroom */

#define HEADROOM XDP_PACKET_HEADROOM
#define TAILROOM XDP_PACKET_TAILROOM
#define MAX_MODES 16
#define MAX_HELPER_ID 256

typedef uint64_t (*entry_fn)(void *, uint64_t);
typedef uint64_t (*helper_fn)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);

/* DPDK's rte_bpf.h (ABI of DPDK 22.11/23.x), declared here so that the driver
 * builds without DPDK's headers; the library is opened with dlopen. */
enum { RTE_BPF_ARG_UNDEF, RTE_BPF_ARG_RAW, RTE_BPF_ARG_PTR = 0x10 };
enum { RTE_BPF_XTYPE_FUNC, RTE_BPF_XTYPE_VAR };
struct rte_bpf_arg {
	int type;
	size_t size;
	size_t buf_size;
};
struct rte_bpf_xsym {
	const char *name;
	int type;
	union {
		struct {
			helper_fn val;
			uint32_t nb_args;
			struct rte_bpf_arg args[5];
			struct rte_bpf_arg ret;
		} func;
		struct {
			void *val;
			struct rte_bpf_arg desc;
		} var;
	};
};
struct rte_bpf_prm {
	const void *ins;
	uint32_t nb_ins;
	const struct rte_bpf_xsym *xsym;
	uint32_t nb_xsym;
	struct rte_bpf_arg prog_arg;
};
struct rte_bpf_jit {
	uint64_t (*func)(void *);
	size_t sz;
};

/* The kernel's struct xdp_md: what eBPF bytecode run unrewritten reads. */
struct xdp_md_kernel {
	uint32_t data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex;
};

/* KERNEL_XDP: entry points called with a struct xdp_md_kernel */
enum kind { NATIVE, KERNEL_XDP, DPDK_INTERP, DPDK_JIT };

struct mode {
	char name[64];
	enum kind kind;
	entry_fn entry;
	void *bpf;                        /* DPDK: struct rte_bpf * */
	uint64_t (*jit)(void *);
	uint64_t calls;
};

static struct {
	uint64_t (*exec)(const void *, void *);
} dpdk;

static unsigned char *input, *buf, *mem;
static size_t input_len, buf_len;
static int is_xdp, restore, reps = 11, quick;
static double rep_ms = 10, warmup_ms = 20;
static struct xdp_md_userspace ctx, ctx_template;
static struct xdp_md_kernel kctx, kctx_template;
static int buf_low; /* the packet buffer is below 4 GiB: kctx can point into it */
static struct mode modes[MAX_MODES];
static int nmodes;
static volatile uint64_t sink;
static unsigned load_timeout = 5; /* seconds DPDK's validator may take */
static char dpdk_lib[256] = "librte_bpf.so.23";
static char llvmbpf_lib[1024], llvmbpf_semantics[16] = "kernel";
static sigjmp_buf load_timed_out;

static void on_alarm(int sig)
{
	(void)sig;
	siglongjmp(load_timed_out, 1);
}

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "driver: cannot read %s: %s\n", path, strerror(errno));
		exit(2);
	}
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	void *p = malloc(n ? n : 1);
	if (n && fread(p, 1, n, f) != (size_t)n) {
		fprintf(stderr, "driver: short read of %s\n", path);
		exit(2);
	}
	fclose(f);
	*len = n;
	return p;
}

/* The input as the program must see it before a call. */
static inline void prepare(void)
{
	if (is_xdp) {
		ctx = ctx_template;
		if (restore)
			memcpy(buf + HEADROOM, input, input_len);
	} else if (restore) {
		memcpy(mem, input, input_len);
	}
}

/* prepare() for a KERNEL_XDP mode */
static inline void prepare_kernel(void)
{
	kctx = kctx_template;
	if (restore)
		memcpy(buf + HEADROOM, input, input_len);
}

static void prepare_all(void)
{
	if (is_xdp) {
		memset(buf, 0, buf_len);
		memcpy(buf + HEADROOM, input, input_len);
		ctx = ctx_template;
		kctx = kctx_template;
	} else {
		memcpy(mem, input, input_len);
	}
}

static inline void *r1(void)
{
	return is_xdp ? (void *)&ctx : (void *)mem;
}

static inline uint64_t r2(void)
{
	return is_xdp ? sizeof ctx : input_len;
}

static inline uint64_t call_once(struct mode *m)
{
	switch (m->kind) {
	case NATIVE:
		return m->entry(r1(), r2());
	case KERNEL_XDP:
		return m->entry(&kctx, sizeof kctx);
	case DPDK_INTERP:
		return dpdk.exec(m->bpf, r1());
	default:
		return m->jit(r1());
	}
}

/* A loop per kind, so that no mode pays for another's dispatch. */
static double run(struct mode *m, uint64_t n)
{
	uint64_t acc = 0;
	void *arg1 = r1();
	uint64_t arg2 = r2();
	double t0 = now_ns();
	if (m->kind == NATIVE) {
		entry_fn fn = m->entry;
		for (uint64_t i = 0; i < n; i++) {
			prepare();
			acc += fn(arg1, arg2);
		}
	} else if (m->kind == KERNEL_XDP) {
		entry_fn fn = m->entry;
		for (uint64_t i = 0; i < n; i++) {
			prepare_kernel();
			acc += fn(&kctx, sizeof kctx);
		}
	} else if (m->kind == DPDK_INTERP) {
		for (uint64_t i = 0; i < n; i++) {
			prepare();
			acc += dpdk.exec(m->bpf, arg1);
		}
	} else {
		uint64_t (*fn)(void *) = m->jit;
		for (uint64_t i = 0; i < n; i++) {
			prepare();
			acc += fn(arg1);
		}
	}
	double t = now_ns() - t0;
	sink += acc;
	return t;
}

static __attribute__((noinline)) uint64_t empty_entry(void *a, uint64_t b)
{
	__asm__ volatile("" ::: "memory");
	return (uint64_t)(uintptr_t)a + b;
}

/* Calls per repetition: about rep_ms of work, found while warming up. */
static uint64_t calibrate(struct mode *m)
{
	uint64_t n = 1;
	double t = 0, spent = 0;
	while (spent < warmup_ms * 1e6) {
		t = run(m, n);
		spent += t;
		if (t < warmup_ms * 1e6 / 4)
			n *= 2;
	}
	double per_call = t / n;
	uint64_t calls = (uint64_t)(rep_ms * 1e6 / per_call);
	return calls ? calls : 1;
}

static void print_hex(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		printf("%02x", p[i]);
}

static void check(struct mode *m)
{
	prepare_all();
	uint64_t r0 = call_once(m);
	printf("check %s %llx ", m->name, (unsigned long long)r0);
	if (is_xdp) {
		int k = m->kind == KERNEL_XDP;
		unsigned char *data = (unsigned char *)(uintptr_t)(k ? kctx.data : ctx.data);
		unsigned char *end = (unsigned char *)(uintptr_t)(k ? kctx.data_end : ctx.data_end);
		if (data < buf || end > buf + buf_len || data > end)
			printf("out-of-bounds");
		else
			print_hex(data, end - data);
	} else {
		print_hex(mem, input_len);
	}
	printf("\n");
	fflush(stdout);
}

static int load_native(struct mode *m, const char *path, const char *entry, const char *setup)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		printf("refused %s dlopen: %s\n", m->name, dlerror());
		return -1;
	}
	m->entry = (entry_fn)dlsym(h, entry);
	if (!m->entry) {
		printf("refused %s no symbol %s\n", m->name, entry);
		return -1;
	}
	if (strcmp(setup, "-") != 0) {
		entry_fn fn = (entry_fn)dlsym(h, setup);
		if (!fn) {
			printf("refused %s no symbol %s\n", m->name, setup);
			return -1;
		}
		fn(NULL, 0);
	}
	return 0;
}

static uint64_t unbound_helper(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
	(void)a, (void)b, (void)c, (void)d, (void)e;
	fprintf(stderr, "driver: a helper the helper set does not provide was called\n");
	abort();
}

static int load_dpdk(struct mode *m, const char *insns_path, const char *helpers_path)
{
	static void *lib;
	static int state; /* 0: not tried, 1: ready, -1: unavailable */
	static char why[512];
	static struct rte_bpf_xsym xsym[MAX_HELPER_ID];
	static char names[MAX_HELPER_ID][24];
	if (state == 0) {
		state = -1;
		lib = dlopen(dpdk_lib, RTLD_NOW | RTLD_GLOBAL);
		void *helpers = lib ? dlopen(helpers_path, RTLD_NOW | RTLD_LOCAL) : NULL;
		if (!lib || !helpers) {
			snprintf(why, sizeof why, "%s: %s", lib ? "helpers" : "unavailable", dlerror());
		} else {
			/* A call's immediate indexes this table: slot i is helper i. */
			for (int i = 0; i < MAX_HELPER_ID; i++) {
				snprintf(names[i], sizeof names[i], "_bpf_helper_ext_%04d", i);
				helper_fn fn = (helper_fn)dlsym(helpers, names[i]);
				xsym[i].name = names[i];
				xsym[i].type = RTE_BPF_XTYPE_FUNC;
				xsym[i].func.val = fn ? fn : unbound_helper;
				xsym[i].func.nb_args = 5;
				for (int a = 0; a < 5; a++)
					xsym[i].func.args[a] = (struct rte_bpf_arg){RTE_BPF_ARG_RAW, 8, 0};
				xsym[i].func.ret = (struct rte_bpf_arg){RTE_BPF_ARG_RAW, 8, 0};
			}
			dpdk.exec = (uint64_t (*)(const void *, void *))dlsym(lib, "rte_bpf_exec");
			state = 1;
		}
	}
	if (state < 0) {
		printf("refused %s %s\n", m->name, why);
		return -1;
	}
	void *(*load)(const struct rte_bpf_prm *) =
		(void *(*)(const struct rte_bpf_prm *))dlsym(lib, "rte_bpf_load");
	int (*get_jit)(const void *, struct rte_bpf_jit *) =
		(int (*)(const void *, struct rte_bpf_jit *))dlsym(lib, "rte_bpf_get_jit");
	size_t len;
	void *insns = read_file(insns_path, &len);
	struct rte_bpf_prm prm = {
		.ins = insns,
		.nb_ins = len / 8,
		.xsym = xsym,
		.nb_xsym = MAX_HELPER_ID,
		.prog_arg = {RTE_BPF_ARG_PTR, is_xdp ? sizeof ctx : input_len, 0},
	};
	fflush(stdout);
	/* DPDK's validator walks every path of the program, which for a long
	 * run of branches does not end in any useful time. */
	static char last_path[1024], last_refusal[600];
	if (!strcmp(last_path, insns_path) && last_refusal[0]) {  /* the other DPDK mode */
		printf("refused %s %s\n", m->name, last_refusal);
		return -1;
	}
	snprintf(last_path, sizeof last_path, "%s", insns_path);
	last_refusal[0] = 0;
	/* DPDK says why it refuses on standard error: keep the first line. */
	static FILE *log;
	static int saved;
	log = tmpfile();
	saved = dup(2);
	fflush(stderr);
	signal(SIGALRM, on_alarm);
	if (sigsetjmp(load_timed_out, 1)) {
		dup2(saved, 2);
		close(saved);
		snprintf(last_refusal, sizeof last_refusal,
			 "validator still running after %u s (it explores every path)", load_timeout);
		printf("refused %s %s\n", m->name, last_refusal);
		return -1;
	}
	if (log)
		dup2(fileno(log), 2);
	alarm(load_timeout);
	m->bpf = load(&prm);
	alarm(0);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	char why_line[512] = "";
	if (log) {
		rewind(log);
		if (!fgets(why_line, sizeof why_line, log))
			why_line[0] = 0;
		why_line[strcspn(why_line, "\n")] = 0;
		fclose(log);
	}
	if (!m->bpf) {
		int *err = (int *)dlsym(lib, "per_lcore__rte_errno");
		snprintf(last_refusal, sizeof last_refusal, "%s (%s)",
			 why_line[0] ? why_line : "rte_bpf_load failed",
			 err ? strerror(*err) : "unknown error");
		printf("refused %s %s\n", m->name, last_refusal);
		return -1;
	}
	if (m->kind == DPDK_JIT) {
		struct rte_bpf_jit jit = {0};
		if (get_jit(m->bpf, &jit) != 0 || !jit.func) {
			printf("refused %s no JIT code for this program\n", m->name);
			return -1;
		}
		m->jit = jit.func;
	}
	return 0;
}

static int load_llvmbpf(struct mode *m, const char *elf, const char *program,
			const char *setup, const char *engine, const char *ctx_kind,
			const char *floor)
{
	typedef void *(*prepare_fn)(const char *, const char *, const char *, const char *,
				    const char *, const char *, int, uint64_t, uint64_t, char *,
				    size_t);
	static prepare_fn prepare_llvmbpf;
	static char why[512];
	if (!prepare_llvmbpf && !why[0]) {
		/* DEEPBIND: its libbpf must find the library's syscall(), which
		 * answers bpf(2) as bpftime's syscall server does, before the C
		 * library's (the host executable interposes it). */
		void *lib = llvmbpf_lib[0] ?
			dlopen(llvmbpf_lib, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND) : NULL;
		prepare_llvmbpf = lib ? (prepare_fn)dlsym(lib, "llvmbpf_bench_prepare") : NULL;
		if (!prepare_llvmbpf)
			snprintf(why, sizeof why, "unavailable: %s",
				 llvmbpf_lib[0] ? dlerror() : "no llvmbpf_lib");
	}
	if (!prepare_llvmbpf) {
		printf("refused %s %s\n", m->name, why);
		return -1;
	}
	m->kind = strcmp(ctx_kind, "xdp-kernel") ? NATIVE : KERNEL_XDP;
	if (m->kind == KERNEL_XDP && !buf_low) {
		printf("refused %s the packet buffer is above 4 GiB: no struct xdp_md can hold it\n",
		       m->name);
		return -1;
	}
	char err[512] = "";
	fflush(stdout);
	m->entry = (entry_fn)prepare_llvmbpf(elf, program, strcmp(setup, "-") ? setup : NULL,
					     engine, ctx_kind, llvmbpf_semantics, atoi(floor),
					     (uint64_t)(uintptr_t)buf, (uint64_t)(uintptr_t)(buf + buf_len),
					     err, sizeof err);
	if (!m->entry) {
		printf("refused %s %s\n", m->name, err);
		return -1;
	}
	return 0;
}

static void parse_config(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	if (!f) {
		fprintf(stderr, "driver: cannot read %s\n", path);
		exit(2);
	}
	while (fgets(line, sizeof line, f)) {
		char key[32], a[1024], b[1024], c[1024], d[1024], e[1024], f[1024], g[1024], h[32];
		int n = sscanf(line, "%31s %1023s %1023s %1023s %1023s %1023s %1023s %1023s %31s",
			       key, a, b, c, d, e, f, g, h);
		if (n < 2)
			continue;
		if (!strcmp(key, "input")) {
			input = read_file(a, &input_len);
		} else if (!strcmp(key, "type")) {
			is_xdp = !strcmp(a, "xdp");
		} else if (!strcmp(key, "restore")) {
			restore = atoi(a);
		} else if (!strcmp(key, "reps")) {
			reps = atoi(a);
		} else if (!strcmp(key, "rep_ms")) {
			rep_ms = atof(a);
		} else if (!strcmp(key, "warmup_ms")) {
			warmup_ms = atof(a);
		} else if (!strcmp(key, "dpdk_lib")) {
			snprintf(dpdk_lib, sizeof dpdk_lib, "%.255s", a);
		} else if (!strcmp(key, "llvmbpf_lib")) {
			snprintf(llvmbpf_lib, sizeof llvmbpf_lib, "%.1023s", a);
		} else if (!strcmp(key, "llvmbpf_semantics")) {
			snprintf(llvmbpf_semantics, sizeof llvmbpf_semantics, "%.15s", a);
		} else if (!strcmp(key, "load_timeout")) {
			load_timeout = atoi(a);
		} else if (!strcmp(key, "quick")) {
			quick = atoi(a);
		} else if (!strcmp(key, "mode") && n >= 5 && nmodes < MAX_MODES) {
			struct mode *m = &modes[nmodes];
			snprintf(m->name, sizeof m->name, "%.63s", a);
			int ok;
			if (!strcmp(b, "so") && n == 6) {
				m->kind = NATIVE;
				ok = load_native(m, c, d, e);
			} else if (!strcmp(b, "llvmbpf") && n == 9) {
				ok = load_llvmbpf(m, c, d, e, f, g, h);
			} else if (!strcmp(b, "dpdk-interp") || !strcmp(b, "dpdk-jit")) {
				m->kind = !strcmp(b, "dpdk-jit") ? DPDK_JIT : DPDK_INTERP;
				ok = load_dpdk(m, c, d);
			} else {
				fprintf(stderr, "driver: bad mode line: %s", line);
				exit(2);
			}
			if (ok == 0)
				nmodes++;
			fflush(stdout);
		}
	}
	fclose(f);
	if (!input) {
		fprintf(stderr, "driver: no input\n");
		exit(2);
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: driver CONFIG\n");
		return 2;
	}
	/* The buffers come before the modes load: DPDK needs the input's size. */
	FILE *peek = fopen(argv[1], "r");
	char line[4096];
	while (peek && fgets(line, sizeof line, peek)) {
		char key[32], a[1024];
		if (sscanf(line, "%31s %1023s", key, a) == 2) {
			if (!strcmp(key, "input"))
				input = read_file(a, &input_len);
			else if (!strcmp(key, "type"))
				is_xdp = !strcmp(a, "xdp");
		}
	}
	if (peek)
		fclose(peek);
	if (!input) {
		fprintf(stderr, "driver: no input\n");
		return 2;
	}
	buf_len = HEADROOM + input_len + TAILROOM;
	/* Below 4 GiB where the system allows, for KERNEL_XDP modes. */
	buf = mmap(NULL, buf_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT,
		   -1, 0);
	if (buf == MAP_FAILED)
		buf = aligned_alloc(64, (buf_len + 63) & ~(size_t)63);
	buf_low = (uintptr_t)buf + buf_len <= UINT32_MAX;
	mem = aligned_alloc(64, (input_len + 63) & ~(size_t)63);
	uint64_t data = (uint64_t)(uintptr_t)(buf + HEADROOM);
	ctx_template = (struct xdp_md_userspace){
		.data = data,
		.data_end = data + input_len,
		.data_meta = 0,
		.ingress_ifindex = 1,
		.buffer_start = (uint64_t)(uintptr_t)buf,
		.buffer_end = data + input_len + TAILROOM,
	};
	kctx_template = (struct xdp_md_kernel){
		.data = (uint32_t)data,
		.data_end = (uint32_t)(data + input_len),
		.data_meta = (uint32_t)data,
		.ingress_ifindex = 1,
	};
	free(input);
	input = NULL;
	parse_config(argv[1]);

	for (int i = 0; i < nmodes; i++)
		check(&modes[i]);
	if (quick)
		return 0;

	struct mode harness = {.name = "harness", .kind = NATIVE, .entry = empty_entry};
	prepare_all();
	harness.calls = calibrate(&harness);
	for (int i = 0; i < nmodes; i++) {
		prepare_all();
		modes[i].calls = calibrate(&modes[i]);
		printf("calls %s %llu\n", modes[i].name, (unsigned long long)modes[i].calls);
	}
	double harness_best = 1e300;
	for (int r = 0; r < reps; r++) {
		for (int k = 0; k < nmodes; k++) {
			struct mode *m = &modes[(r + k) % nmodes];
			prepare_all();
			double t = run(m, m->calls);
			printf("rep %d %s %.3f\n", r, m->name, t / m->calls);
		}
		prepare_all();
		double t = run(&harness, harness.calls) / harness.calls;
		if (t < harness_best)
			harness_best = t;
	}
	printf("harness %.3f\n", harness_best);
	return 0;
}
