/* BPF_MAP_TYPE_LPM_TRIE (docs/maps.md), as kernel/bpf/lpm_trie.c.
 *
 * Keys are struct bpf_lpm_trie_key: {u32 prefixlen (host order); u8
 * data[key_size - 4] (network order, most significant bit first)}. lookup
 * finds the longest stored prefix that matches the key's first prefixlen
 * bits; update stores a prefix (BPF_NOEXIST/BPF_EXIST as for a hash, Linux
 * 6.14+); delete removes an exact prefix; get_next_key walks the trie in
 * post-order (more specific prefixes before less specific ones), as the
 * kernel does.
 *
 * The trie is the kernel's: a binary, path-compressed trie in which every
 * node holds a prefix; a child's prefix extends its parent's, and which child
 * is chosen by the first bit after the parent's prefix. Intermediate nodes
 * (flag LPM_IM, no value) join two subtrees whose common prefix is not stored;
 * they always have two children, so the trie never has more than
 * 2 * max_entries - 1 nodes.
 *
 * Storage (position independent, all zero = empty): a 32-byte header, then a
 * pool of 2 * max_entries nodes of node_size bytes; nodes refer to each
 * other by 1-based index (0 = none); freed nodes form a free list, untouched
 * ones are handed out from `used` upwards.
 *
 * Locking: one spin lock in storage serialises update, delete and
 * get_next_key, and lookups take it too: a lookup walking the trie while an
 * update frees and reuses a node would read a reused node (the kernel avoids
 * that with RCU, which does not exist here). The value pointer a lookup
 * returns stays valid until that prefix is deleted; an update of an existing
 * prefix rewrites its value in place (the kernel swaps in a new node).
 */
#include "maps.h"

#define LPM_IM 1u          /* intermediate node: no value */
#define LPM_DATA_MIN 1u    /* bytes of key data, as the kernel allows */
#define LPM_DATA_MAX 256u
#define LPM_MAX_PREFIX (LPM_DATA_MAX * 8)

struct lpm_hdr {
    uint32_t lock;
    uint32_t root;      /* node index, 0 = empty trie */
    uint32_t n_entries; /* prefixes stored (intermediate nodes not counted) */
    uint32_t used;      /* nodes ever handed out: 1..used */
    uint32_t free_list; /* first free node (linked through child[0]) */
    uint32_t pad[3];
};

struct lpm_node {
    uint32_t child[2];
    uint32_t prefixlen;
    uint32_t flags;
    uint8_t data[]; /* data_size bytes, then (8-aligned) the value */
};

struct lpm_key {
    uint32_t prefixlen;
    uint8_t data[];
};

static inline uint32_t lpm_data_size(const struct bpf_map *m)
{
    return m->key_size - 4;
}

static inline int lpm_geometry_ok(const struct bpf_map *m)
{
    return m->key_size >= 4 + LPM_DATA_MIN && m->key_size <= 4 + LPM_DATA_MAX &&
           m->value_size != 0 && m->max_entries != 0;
}

static inline uint64_t lpm_node_size(const struct bpf_map *m)
{
    return sizeof(struct lpm_node) + MAP_ROUND8(lpm_data_size(m)) + map_value_stride(m);
}

/* Nodes in the pool: room for max_entries prefixes and their intermediate
 * nodes, indexes kept below 2^32 - 1. */
static inline uint32_t lpm_pool_nodes(const struct bpf_map *m)
{
    uint64_t n = 2 * (uint64_t)m->max_entries;
    return n > 0xfffffffeu ? 0xfffffffeu : (uint32_t)n;
}

static uint64_t lpm_storage_size(const struct bpf_map *m)
{
    if (!lpm_geometry_ok(m))
        return 0;
    return sizeof(struct lpm_hdr) + (uint64_t)lpm_pool_nodes(m) * lpm_node_size(m);
}

static inline struct lpm_node *lpm_node(const struct bpf_map *m, struct lpm_hdr *h, uint32_t idx)
{
    return (struct lpm_node *)((char *)(h + 1) + (uint64_t)(idx - 1) * lpm_node_size(m));
}

static inline void *lpm_value(const struct bpf_map *m, struct lpm_node *n)
{
    return n->data + MAP_ROUND8(lpm_data_size(m));
}

/* Bit `index` of data, most significant bit of data[0] first. */
static inline uint32_t lpm_bit(const uint8_t *data, uint32_t index)
{
    return (data[index / 8] >> (7 - index % 8)) & 1;
}

/* Leading bits node and key share, at most min(node's, key's prefixlen). */
static inline uint32_t lpm_match(const struct bpf_map *m, const struct lpm_node *n,
                                 const struct lpm_key *key)
{
    uint32_t limit = n->prefixlen < key->prefixlen ? n->prefixlen : key->prefixlen;
    uint32_t dsz = lpm_data_size(m), bits = 0;
    for (uint32_t i = 0; i < dsz && bits < limit; i++) {
        uint32_t diff = n->data[i] ^ key->data[i];
        if (diff) {
            bits += (uint32_t)__builtin_clz(diff) - 24;
            break;
        }
        bits += 8;
    }
    return bits < limit ? bits : limit;
}

static inline uint32_t lpm_alloc(const struct bpf_map *m, struct lpm_hdr *h)
{
    uint32_t idx = h->free_list;
    if (idx) {
        h->free_list = lpm_node(m, h, idx)->child[0];
        return idx;
    }
    if (h->used >= lpm_pool_nodes(m))
        return 0;
    return ++h->used;
}

static inline void lpm_free(const struct bpf_map *m, struct lpm_hdr *h, uint32_t idx)
{
    lpm_node(m, h, idx)->child[0] = h->free_list;
    h->free_list = idx;
}

static inline struct lpm_hdr *lpm_hdr_of(const struct bpf_map *m)
{
    return lpm_geometry_ok(m) ? (struct lpm_hdr *)map_storage(m) : 0;
}

static void *lpm_lookup(const struct bpf_map *m, const void *key_in)
{
    const struct lpm_key *key = (const struct lpm_key *)key_in;
    struct lpm_hdr *h = lpm_hdr_of(m);
    if (!h)
        return 0;
    uint32_t max_prefix = lpm_data_size(m) * 8;
    struct lpm_node *found = 0;
    map_lock(&h->lock);
    for (uint32_t idx = h->root; idx;) {
        struct lpm_node *n = lpm_node(m, h, idx);
        uint32_t matchlen = lpm_match(m, n, key);
        if (matchlen == max_prefix) {
            found = n; /* a full-length node is never intermediate */
            break;
        }
        if (matchlen < n->prefixlen)
            break;
        if (!(n->flags & LPM_IM))
            found = n;
        idx = n->child[lpm_bit(key->data, n->prefixlen)];
    }
    map_unlock(&h->lock);
    return found ? lpm_value(m, found) : 0;
}

static long lpm_update(const struct bpf_map *m, const void *key_in, const void *value,
                       uint64_t flags)
{
    const struct lpm_key *key = (const struct lpm_key *)key_in;
    if (flags > BPF_EXIST || !lpm_geometry_ok(m))
        return -EINVAL;
    uint32_t dsz = lpm_data_size(m), max_prefix = dsz * 8;
    if (key->prefixlen > max_prefix)
        return -EINVAL;
    struct lpm_hdr *h = lpm_hdr_of(m);
    if (!h)
        return -ENOMEM;
    long ret = 0;
    map_lock(&h->lock);

    /* Walk down while the node's prefix is a proper prefix of the key. */
    uint32_t *slot = &h->root, idx, matchlen = 0;
    struct lpm_node *n = 0;
    while ((idx = *slot)) {
        n = lpm_node(m, h, idx);
        matchlen = lpm_match(m, n, key);
        if (n->prefixlen != matchlen || n->prefixlen == key->prefixlen ||
            n->prefixlen == max_prefix)
            break;
        slot = &n->child[lpm_bit(key->data, n->prefixlen)];
    }

    if (idx && n->prefixlen == matchlen) {
        /* The prefix has a node: store the value in place. */
        if (n->flags & LPM_IM) {
            if (flags == BPF_EXIST) {
                ret = -ENOENT;
                goto out;
            }
            if (h->n_entries >= m->max_entries) {
                ret = -ENOSPC;
                goto out;
            }
            n->flags = 0;
            h->n_entries++;
        } else if (flags == BPF_NOEXIST) {
            ret = -EEXIST;
            goto out;
        }
        __builtin_memcpy(n->data, key->data, dsz);
        __builtin_memcpy(lpm_value(m, n), value, m->value_size);
        goto out;
    }

    if (flags == BPF_EXIST) {
        ret = -ENOENT;
        goto out;
    }
    if (h->n_entries >= m->max_entries) {
        ret = -ENOSPC;
        goto out;
    }
    uint32_t new_idx = lpm_alloc(m, h);
    if (!new_idx) {
        ret = -ENOMEM;
        goto out;
    }
    struct lpm_node *nn = lpm_node(m, h, new_idx);
    nn->child[0] = nn->child[1] = 0;
    nn->prefixlen = key->prefixlen;
    nn->flags = 0;
    __builtin_memcpy(nn->data, key->data, dsz);
    __builtin_memcpy(lpm_value(m, nn), value, m->value_size);

    if (!idx) {
        *slot = new_idx; /* an empty slot */
    } else if (matchlen == key->prefixlen) {
        /* The new prefix is a prefix of the node's: it becomes its parent. */
        nn->child[lpm_bit(n->data, matchlen)] = idx;
        *slot = new_idx;
    } else {
        /* They diverge after matchlen bits: join them under an
         * intermediate node holding the common prefix. */
        uint32_t im_idx = lpm_alloc(m, h);
        if (!im_idx) {
            lpm_free(m, h, new_idx);
            ret = -ENOMEM;
            goto out;
        }
        struct lpm_node *im = lpm_node(m, h, im_idx);
        im->prefixlen = matchlen;
        im->flags = LPM_IM;
        __builtin_memcpy(im->data, n->data, dsz);
        uint32_t b = lpm_bit(key->data, matchlen);
        im->child[b] = new_idx;
        im->child[!b] = idx;
        *slot = im_idx;
    }
    h->n_entries++;
out:
    map_unlock(&h->lock);
    return ret;
}

static long lpm_delete(const struct bpf_map *m, const void *key_in)
{
    const struct lpm_key *key = (const struct lpm_key *)key_in;
    if (!lpm_geometry_ok(m))
        return -EINVAL;
    if (key->prefixlen > lpm_data_size(m) * 8)
        return -EINVAL;
    struct lpm_hdr *h = lpm_hdr_of(m);
    if (!h)
        return -ENOMEM;
    long ret = 0;
    map_lock(&h->lock);
    /* trim: the slot holding the node; trim2: the slot holding its parent. */
    uint32_t *trim = &h->root, *trim2 = trim, idx, parent = 0, matchlen = 0;
    struct lpm_node *n = 0;
    while ((idx = *trim)) {
        n = lpm_node(m, h, idx);
        matchlen = lpm_match(m, n, key);
        if (n->prefixlen != matchlen || n->prefixlen == key->prefixlen)
            break;
        parent = idx;
        trim2 = trim;
        trim = &n->child[lpm_bit(key->data, n->prefixlen)];
    }
    if (!idx || n->prefixlen != key->prefixlen || n->prefixlen != matchlen ||
        (n->flags & LPM_IM)) {
        ret = -ENOENT;
        goto out;
    }
    h->n_entries--;
    if (n->child[0] && n->child[1]) {
        /* Still needed to join its two subtrees. */
        n->flags |= LPM_IM;
        goto out;
    }
    struct lpm_node *p = parent ? lpm_node(m, h, parent) : 0;
    if (p && (p->flags & LPM_IM) && !n->child[0] && !n->child[1]) {
        /* A leaf under an intermediate node: the node's sibling takes the
         * intermediate node's place. */
        *trim2 = p->child[p->child[0] == idx ? 1 : 0];
        lpm_free(m, h, parent);
        lpm_free(m, h, idx);
        goto out;
    }
    *trim = n->child[0] ? n->child[0] : n->child[1];
    lpm_free(m, h, idx);
out:
    map_unlock(&h->lock);
    return ret;
}

/* The first node in post-order under `idx` that holds a prefix. */
static inline uint32_t lpm_leftmost(const struct bpf_map *m, struct lpm_hdr *h, uint32_t idx)
{
    uint32_t next = 0;
    while (idx) {
        struct lpm_node *n = lpm_node(m, h, idx);
        if (n->flags & LPM_IM) {
            idx = n->child[0];
        } else {
            next = idx;
            idx = n->child[0] ? n->child[0] : n->child[1];
        }
    }
    return next;
}

/* Post-order: a NULL key, an invalid one or one not stored gives the first
 * prefix; the last gives -ENOENT. */
static long lpm_get_next_key(const struct bpf_map *m, const void *key_in, void *next_out)
{
    const struct lpm_key *key = (const struct lpm_key *)key_in;
    struct lpm_key *next_key = (struct lpm_key *)next_out;
    if (!lpm_geometry_ok(m))
        return -EINVAL;
    struct lpm_hdr *h = lpm_hdr_of(m);
    if (!h)
        return -ENOMEM;
    uint32_t dsz = lpm_data_size(m), max_prefix = dsz * 8;
    uint32_t stack[LPM_MAX_PREFIX + 1]; /* a path: prefixes grow strictly */
    long ret = 0;
    uint32_t next = 0;
    map_lock(&h->lock);
    if (!h->root) {
        ret = -ENOENT;
        goto out;
    }
    if (!key || key->prefixlen > max_prefix) {
        next = lpm_leftmost(m, h, h->root);
        goto copy;
    }
    int sp = -1;
    uint32_t idx = h->root, matchlen = 0;
    struct lpm_node *n = 0;
    while (idx) {
        n = lpm_node(m, h, idx);
        stack[++sp] = idx;
        matchlen = lpm_match(m, n, key);
        if (n->prefixlen != matchlen || n->prefixlen == key->prefixlen)
            break;
        idx = n->child[lpm_bit(key->data, n->prefixlen)];
    }
    if (!idx || n->prefixlen != key->prefixlen || matchlen != n->prefixlen ||
        (n->flags & LPM_IM)) {
        next = lpm_leftmost(m, h, h->root);
        goto copy;
    }
    /* Found: climb until a right sibling subtree or a prefix-holding
     * parent comes next. */
    while (sp > 0) {
        struct lpm_node *p = lpm_node(m, h, stack[sp - 1]);
        if (p->child[0] == stack[sp] && p->child[1]) {
            next = lpm_leftmost(m, h, p->child[1]);
            goto copy;
        }
        if (!(p->flags & LPM_IM)) {
            next = stack[sp - 1];
            goto copy;
        }
        sp--;
    }
    ret = -ENOENT;
    goto out;
copy:
    n = lpm_node(m, h, next);
    next_key->prefixlen = n->prefixlen;
    __builtin_memcpy(next_key->data, n->data, dsz);
out:
    map_unlock(&h->lock);
    return ret;
}

const struct map_ops lpm_trie_ops = {
    .storage_size = lpm_storage_size,
    .lookup = lpm_lookup,
    .update = lpm_update,
    .delete = lpm_delete,
    .get_next_key = lpm_get_next_key,
};
