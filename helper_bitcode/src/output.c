/* Formatted output: trace_printk (6), snprintf (165), trace_vprintk (177).
 *
 *   long bpf_trace_printk(const char *fmt, u32 fmt_size, ...)   at most 3 args
 *   long bpf_snprintf(char *str, u32 str_size, const char *fmt, u64 *data, u32 data_len)
 *   long bpf_trace_vprintk(const char *fmt, u32 fmt_size, const void *data, u32 data_len)
 *
 * One formatter serves all three, following the kernel's two steps
 * (kernel/bpf/helpers.c and kernel/trace/bpf_trace.c):
 *
 * 1. bpf_bprintf_prepare() checks the format and the arguments before any
 *    output; every failure is -EINVAL unless noted:
 *    - fmt must hold a NUL within fmt_size (bpf_snprintf's fmt is a constant
 *      string, NUL-terminated by the verifier, so it has no size);
 *    - every character must be printable ASCII or white space;
 *    - "%%" is a literal '%'; any other '%' starts a conversion, and there
 *      may be no more conversions than arguments;
 *    - a conversion is "%", optional flags from "0+- ", an optional width
 *      (no '*', no precision, no '#'), then one of:
 *        d i u x X, with an optional l or ll (int, long, long long; long is
 *          64-bit); h, z, j, t are refused;
 *        c;
 *        s, which must be followed by NUL, white space or punctuation;
 *        p, px, pK, ps, pS, pB (pointers), pks and pus (strings, same rule
 *          as s), pI4 pi4 pI6 pi6 (IP addresses read through the pointer);
 *    - the arguments are packed into a 512-byte buffer (numbers 4 or 8
 *      bytes at 4-byte alignment, %c 1 byte, strings and formatted IP
 *      addresses their bytes and NUL); when it is full -ENOSPC. A string
 *      longer than the space left is cut, as the kernel's copy cuts it.
 *      A string or IP address whose pointer is bad (host.h) reads as empty
 *      or as all-zero bytes, as the kernel's faulting copy does.
 * 2. bstr_printf() formats as the kernel's vsnprintf(): flags and width as
 *    in C; %p prints the pointer as 16 zero-padded lowercase hex digits.
 *    Differences from the kernel: %p is not hashed and %ps/%pS/%pB print the
 *    address rather than a kernel symbol (there is no kernel address to hide
 *    or to name); a '%' right after a %p conversion is parsed as the start of
 *    the next conversion (the kernel's check skips it).
 *
 * Returns: trace_printk and trace_vprintk format into a 1024-byte buffer
 * (MAX_BPRINTF_BUF), write the (possibly cut) text to standard error (fd 2)
 * where the kernel writes it to the trace buffer, and return the length of
 * the full formatted text, without NUL, as the kernel does. bpf_snprintf
 * writes at most str_size bytes, always NUL-terminated when str_size > 0, and
 * returns the length of the full formatted text including its NUL.
 */
#include "host.h"

#define MAX_TRACE_PRINTK_VARARGS 3
#define MAX_BPRINTF_VARARGS 12
#define MAX_BPRINTF_BUF 1024
#define MAX_BPRINTF_BIN_ARGS 512
#define FIELD_WIDTH_MAX ((1 << 23) - 1)

#define F_LEFT 1
#define F_PLUS 2
#define F_SPACE 4
#define F_ZEROPAD 8

/* Output sink: bytes below cap are stored; len counts every byte produced.
 * A NULL buf is the checking pass, which produces nothing. */
struct sink {
    char *buf;
    u64 cap;
    u64 len;
};

static void put(struct sink *o, char c)
{
    if (!o->buf)
        return;
    if (o->len < o->cap)
        o->buf[o->len] = c;
    o->len++;
}

static void pad(struct sink *o, char c, int64_t n)
{
    for (; n > 0; n--)
        put(o, c);
}

static int is_space(u8 c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

static int is_punct(u8 c)
{
    return c > ' ' && c < 0x7f && !(c >= '0' && c <= '9') &&
           !((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

static int fmt_char_ok(u8 c)
{
    return (c >= ' ' && c < 0x7f) || is_space(c);
}

/* Linux number(): sign, zero or space padding, width. width < 0: none. */
static void put_number(struct sink *o, u64 num, int is_signed, unsigned base, int upper,
                       int flags, int64_t width)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char tmp[24];
    int n = 0;
    char sign = 0;

    if (flags & F_LEFT)
        flags &= ~F_ZEROPAD;
    if (is_signed) {
        if ((int64_t)num < 0) {
            sign = '-';
            num = -num;
        } else if (flags & F_PLUS) {
            sign = '+';
        } else if (flags & F_SPACE) {
            sign = ' ';
        }
        if (sign)
            width--;
    }
    do {
        tmp[n++] = digits[num % base];
        num /= base;
    } while (num);
    width -= n;
    if (!(flags & (F_ZEROPAD | F_LEFT)))
        pad(o, ' ', width), width = 0;
    if (sign)
        put(o, sign);
    if (!(flags & F_LEFT))
        pad(o, (flags & F_ZEROPAD) ? '0' : ' ', width), width = 0;
    while (n > 0)
        put(o, tmp[--n]);
    pad(o, ' ', width);
}

/* A string of n bytes, space-padded to width (Linux widen_string()). */
static void put_string(struct sink *o, const char *s, u64 n, int flags, int64_t width)
{
    int64_t fill = width > (int64_t)n ? width - (int64_t)n : 0;
    if (!(flags & F_LEFT))
        pad(o, ' ', fill);
    for (u64 i = 0; i < n; i++)
        put(o, s[i]);
    if (flags & F_LEFT)
        pad(o, ' ', fill);
}

static u64 small_string(char *dst, u64 v, int min_digits)
{
    char tmp[4];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n < min_digits)
        tmp[n++] = '0';
    for (int i = 0; i < n; i++)
        dst[i] = tmp[n - 1 - i];
    return (u64)n;
}

/* %pI4 "1.2.3.4", %pi4 "001.002.003.004", %pI6 "0001:0db8:...", %pi6 32 hex
 * digits: Linux's ip4_string()/ip6_string(). Returns the length. */
static u64 format_ip(char *dst, const u8 *addr, char kind, char version)
{
    static const char hex[] = "0123456789abcdef";
    u64 n = 0;
    if (version == '4') {
        for (int i = 0; i < 4; i++) {
            if (i)
                dst[n++] = '.';
            n += small_string(dst + n, addr[i], kind == 'i' ? 3 : 1);
        }
    } else {
        for (int i = 0; i < 16; i++) {
            if (kind == 'I' && i && i % 2 == 0)
                dst[n++] = ':';
            dst[n++] = hex[addr[i] >> 4];
            dst[n++] = hex[addr[i] & 15];
        }
    }
    return n;
}

/* Both passes: with o->buf NULL, check only (bpf_bprintf_prepare); then
 * format (bstr_printf). The format is fmt[0..len), fmt[len] == 0. Returns 0
 * or a negative errno. */
static int64_t bprintf(const char *fmt, u64 len, const u64 *args, u32 num_args, struct sink *o)
{
    u32 packed = 0; /* bytes of the kernel's 512-byte argument buffer used */
    u32 spec = 0;

    for (u64 i = 0; i < len; i++) {
        u8 c = (u8)fmt[i];
        if (!fmt_char_ok(c))
            return -EINVAL;
        if (c != '%') {
            put(o, (char)c);
            continue;
        }
        if (fmt[i + 1] == '%') {
            put(o, '%');
            i++;
            continue;
        }
        if (spec >= num_args)
            return -EINVAL;
        u64 arg = args[spec];
        i++;

        int flags = 0;
        for (;; i++) {
            char f = fmt[i];
            if (f == '-')
                flags |= F_LEFT;
            else if (f == '+')
                flags |= F_PLUS;
            else if (f == ' ')
                flags |= F_SPACE;
            else if (f == '0')
                flags |= F_ZEROPAD;
            else
                break;
        }
        int64_t width = -1;
        if (fmt[i] >= '1' && fmt[i] <= '9') {
            width = 0;
            for (; fmt[i] >= '0' && fmt[i] <= '9'; i++) {
                width = width * 10 + (fmt[i] - '0');
                if (width > FIELD_WIDTH_MAX)
                    width = FIELD_WIDTH_MAX;
            }
        }

        char conv = fmt[i];
        int is_string = 0;
        if (conv == 'p') {
            char m = fmt[i + 1];
            if ((m == 'k' || m == 'u') && fmt[i + 2] == 's') {
                i += 2;
                is_string = 1;
            } else if (m == 0 || is_space((u8)m) || is_punct((u8)m)) {
                /* plain %p: the next character is ordinary text */
            } else if (m == 'K' || m == 'x' || m == 's' || m == 'S' || m == 'B') {
                i++;
            } else if ((m == 'i' || m == 'I') && (fmt[i + 2] == '4' || fmt[i + 2] == '6')) {
                char version = fmt[i + 2];
                u32 ip_size = version == '4' ? 4 : 16;
                u8 addr[16];
                char text[40];
                i += 2;
                if (MAX_BPRINTF_BIN_ARGS - packed < ip_size)
                    return -ENOSPC;
                if (host_bad_pointer(arg))
                    __builtin_memset(addr, 0, sizeof(addr));
                else
                    __builtin_memcpy(addr, (const void *)(uintptr_t)arg, ip_size);
                u64 n = format_ip(text, addr, m, version);
                u64 room = MAX_BPRINTF_BIN_ARGS - packed;
                if (n + 1 > room)
                    n = room - 1;
                packed += (u32)(n + 1);
                put_string(o, text, n, flags, width);
                spec++;
                continue;
            } else {
                return -EINVAL;
            }
            if (!is_string) {
                packed = (packed + 3) & ~3u;
                if (MAX_BPRINTF_BIN_ARGS - packed < 8)
                    return -ENOSPC;
                packed += 8;
                if (width < 0) {
                    width = 16;
                    flags |= F_ZEROPAD;
                }
                put_number(o, arg, 0, 16, 0, flags, width);
                spec++;
                continue;
            }
        } else if (conv == 's') {
            is_string = 1;
        }

        if (is_string) {
            char next = fmt[i + 1];
            if (next != 0 && !is_space((u8)next) && !is_punct((u8)next))
                return -EINVAL;
            if (packed == MAX_BPRINTF_BIN_ARGS)
                return -ENOSPC;
            u64 room = MAX_BPRINTF_BIN_ARGS - packed, n = 0;
            const char *s = (const char *)(uintptr_t)arg;
            if (!host_bad_pointer(arg))
                while (n + 1 < room && s[n])
                    n++;
            packed += (u32)(n + 1);
            put_string(o, s, n, flags, width);
            spec++;
            continue;
        }

        if (conv == 'c') {
            if (packed == MAX_BPRINTF_BIN_ARGS)
                return -ENOSPC;
            packed += 1;
            if (!(flags & F_LEFT))
                pad(o, ' ', width - 1);
            put(o, (char)(u8)arg);
            if (flags & F_LEFT)
                pad(o, ' ', width - 1);
            spec++;
            continue;
        }

        u32 size = 4;
        if (fmt[i] == 'l') {
            size = 8;
            i++;
        }
        if (fmt[i] == 'l') {
            size = 8;
            i++;
        }
        conv = fmt[i];
        if (conv != 'd' && conv != 'i' && conv != 'u' && conv != 'x' && conv != 'X')
            return -EINVAL;
        packed = (packed + 3) & ~3u;
        if (MAX_BPRINTF_BIN_ARGS - packed < size)
            return -ENOSPC;
        packed += size;
        int is_signed = conv == 'd' || conv == 'i';
        u64 v = arg;
        if (size == 4)
            v = is_signed ? (u64)(int64_t)(int32_t)v : (u64)(u32)v;
        put_number(o, v, is_signed, (conv == 'x' || conv == 'X') ? 16 : 10, conv == 'X', flags,
                   width);
        spec++;
    }
    return 0;
}

/* The format's length: the index of its NUL within max bytes, or -1. */
static int64_t format_length(const char *fmt, u64 max)
{
    for (u64 i = 0; i < max; i++)
        if (fmt[i] == 0)
            return (int64_t)i;
    return -1;
}

/* Check then format into buf[0..cap]; returns the full length or -errno. */
static int64_t format_all(char *buf, u64 cap, const char *fmt, u64 fmt_len, const u64 *args,
                          u32 num_args)
{
    struct sink check = {0, 0, 0};
    int64_t err = bprintf(fmt, fmt_len, args, num_args, &check);
    if (err < 0)
        return err;
    struct sink out = {buf, cap, 0};
    bprintf(fmt, fmt_len, args, num_args, &out);
    return (int64_t)out.len;
}

static void write_all(const char *p, u64 n)
{
    while (n > 0) {
        long w = write(2, p, n);
        if (w <= 0)
            return;
        p += w;
        n -= (u64)w;
    }
}

static u64 trace_print(u64 fmt_addr, u64 fmt_size, const u64 *args, u32 num_args)
{
    const char *fmt = (const char *)(uintptr_t)fmt_addr;
    char buf[MAX_BPRINTF_BUF];
    int64_t fmt_len = format_length(fmt, (u32)fmt_size);
    if (fmt_len < 0)
        return NEG_ERRNO(EINVAL);
    int64_t n = format_all(buf, MAX_BPRINTF_BUF - 1, fmt, (u64)fmt_len, args, num_args);
    if (n < 0)
        return (u64)n;
    write_all(buf, (u64)n < MAX_BPRINTF_BUF - 1 ? (u64)n : MAX_BPRINTF_BUF - 1);
    return (u64)n;
}

BPF_HELPER(0006) /* trace_printk */
{
    u64 args[MAX_TRACE_PRINTK_VARARGS] = {r3, r4, r5};
    return trace_print(r1, r2, args, MAX_TRACE_PRINTK_VARARGS);
}

static int bad_data(u64 data, u32 data_len)
{
    return data_len % 8 || data_len > MAX_BPRINTF_VARARGS * 8 || (data_len && !data);
}

BPF_HELPER(0177) /* trace_vprintk */
{
    u32 data_len = (u32)r4;
    (void)r5;
    if (bad_data(r3, data_len))
        return NEG_ERRNO(EINVAL);
    return trace_print(r1, r2, (const u64 *)(uintptr_t)r3, data_len / 8);
}

BPF_HELPER(0165) /* snprintf */
{
    char *str = (char *)(uintptr_t)r1;
    u32 str_size = (u32)r2;
    const char *fmt = (const char *)(uintptr_t)r3;
    u32 data_len = (u32)r5;
    if (bad_data(r4, data_len))
        return NEG_ERRNO(EINVAL);
    int64_t fmt_len = format_length(fmt, (u64)-1);
    int64_t n = format_all(str, str_size ? str_size - 1 : 0, fmt, (u64)fmt_len,
                           (const u64 *)(uintptr_t)r4, data_len / 8);
    if (n < 0)
        return (u64)n;
    if (str_size)
        str[(u64)n < str_size - 1 ? (u64)n : str_size - 1] = 0;
    return (u64)n + 1;
}
