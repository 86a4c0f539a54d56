#include "shardseg/arena.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ss_budget_init(ss_budget_t *b, size_t limit)
{
    b->limit = limit;
    b->in_use = 0;
    b->peak = 0;
}

ss_status_t ss_budget_charge(ss_budget_t *b, size_t bytes, const char *what, ss_error_t *err)
{
    if (b == NULL) {
        return SS_OK;
    }
    size_t cur = b->in_use;
    size_t next;
    do {
        next = cur + bytes;
        if (next < cur || (b->limit != 0 && next > b->limit)) {
            char req[32], used[32], lim[32];
            ss_bytes_format(bytes, req, sizeof(req));
            ss_bytes_format(cur, used, sizeof(used));
            ss_bytes_format(b->limit, lim, sizeof(lim));
            SS_FAIL(err, SS_ENOMEM,
                    "--mem-limit: %s for %s would exceed the limit of %s (%s already in use); "
                    "raise --mem-limit or use a smaller patch, model or more ranks",
                    req, what ? what : "an allocation", lim, used);
        }
    } while (!__atomic_compare_exchange_n(&b->in_use, &cur, next, 0, __ATOMIC_RELAXED,
                                          __ATOMIC_RELAXED));
    size_t peak = b->peak;
    while (next > peak && !__atomic_compare_exchange_n(&b->peak, &peak, next, 0, __ATOMIC_RELAXED,
                                                       __ATOMIC_RELAXED)) {
    }
    return SS_OK;
}

void ss_budget_release(ss_budget_t *b, size_t bytes)
{
    if (b != NULL) {
        __atomic_fetch_sub(&b->in_use, bytes, __ATOMIC_RELAXED);
    }
}

size_t ss_budget_in_use(const ss_budget_t *b)
{
    return b->in_use;
}

size_t ss_budget_peak(const ss_budget_t *b)
{
    return b->peak;
}

static size_t round_up(size_t n, size_t a)
{
    return (n + a - 1) / a * a;
}

ss_status_t
ss_aligned_alloc(void **out, size_t bytes, ss_budget_t *b, const char *what, ss_error_t *err)
{
    *out = NULL;
    size_t padded = round_up(bytes ? bytes : 1, SS_ALIGN);
    if (padded < bytes) {
        SS_FAIL(err, SS_ENOMEM, "%s: size overflow (%zu bytes)", what ? what : "allocation", bytes);
    }
    SS_TRY(ss_budget_charge(b, padded, what, err));
    void *p = aligned_alloc(SS_ALIGN, padded);
    if (p == NULL) {
        ss_budget_release(b, padded);
        char req[32];
        ss_bytes_format(padded, req, sizeof(req));
        SS_FAIL_LIB(err, SS_ENOMEM, errno,
                    "%s: the system refused %s; lower --mem-limit so the plan fits, or free memory",
                    what ? what : "allocation", req);
    }
    *out = p;
    return SS_OK;
}

void ss_aligned_free(void *p, size_t bytes, ss_budget_t *b)
{
    if (p == NULL) {
        return;
    }
    free(p);
    ss_budget_release(b, round_up(bytes ? bytes : 1, SS_ALIGN));
}

// Chunks form a singly linked list in allocation order; `cur` is the chunk being filled. Chunks
// after `cur` are empty and reused before any new one is requested.
typedef struct chunk {
    struct chunk *next;
    size_t size; // usable bytes after the header
    size_t used;
    // data follows, SS_ALIGN-aligned
} chunk_t;

#define CHUNK_HEADER round_up(sizeof(chunk_t), SS_ALIGN)

struct ss_arena {
    chunk_t *head;
    chunk_t *cur;
    size_t chunk_bytes;
    size_t live;     // bytes handed out now, including padding and skipped chunk tails
    size_t peak;     // max of live
    size_t reserved; // bytes of all chunks (headers included), charged to the budget
    ss_budget_t *budget;
    char name[48];
};

ss_status_t ss_arena_create(
    size_t chunk_bytes, ss_budget_t *b, const char *name, ss_arena_t **out, ss_error_t *err)
{
    *out = NULL;
    ss_arena_t *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        SS_FAIL(err, SS_ENOMEM, "arena %s: out of memory", name ? name : "");
    }
    a->chunk_bytes = round_up(chunk_bytes ? chunk_bytes : (1u << 20), SS_ALIGN);
    a->budget = b;
    snprintf(a->name, sizeof(a->name), "%s", name ? name : "arena");
    *out = a;
    return SS_OK;
}

void ss_arena_destroy(ss_arena_t **pa)
{
    if (pa == NULL || *pa == NULL) {
        return;
    }
    ss_arena_t *a = *pa;
    for (chunk_t *c = a->head; c != NULL;) {
        chunk_t *next = c->next;
        free(c);
        c = next;
    }
    ss_budget_release(a->budget, a->reserved);
    free(a);
    *pa = NULL;
}

static char *chunk_data(chunk_t *c)
{
    return (char *)c + CHUNK_HEADER;
}

static ss_status_t arena_new_chunk(ss_arena_t *a, size_t need, ss_error_t *err)
{
    size_t size = need > a->chunk_bytes ? round_up(need, SS_ALIGN) : a->chunk_bytes;
    size_t total = size + CHUNK_HEADER;
    char what[96];
    snprintf(what, sizeof(what), "arena '%s'", a->name);
    SS_TRY(ss_budget_charge(a->budget, total, what, err));
    chunk_t *c = aligned_alloc(SS_ALIGN, total);
    if (c == NULL) {
        ss_budget_release(a->budget, total);
        SS_FAIL_LIB(err, SS_ENOMEM, errno, "%s: the system refused %zu bytes", what, total);
    }
    c->next = NULL;
    c->size = size;
    c->used = 0;
    a->reserved += total;
    // Insert right after cur, so the empty chunks after cur stay in order for reuse.
    if (a->cur == NULL) {
        c->next = a->head;
        a->head = c;
    } else {
        c->next = a->cur->next;
        a->cur->next = c;
    }
    a->cur = c;
    return SS_OK;
}

ss_status_t ss_arena_alloc(ss_arena_t *a, size_t bytes, void **out, ss_error_t *err)
{
    size_t need = round_up(bytes ? bytes : 1, SS_ALIGN);
    if (need < bytes) {
        SS_FAIL(err, SS_ENOMEM, "arena '%s': size overflow (%zu bytes)", a->name, bytes);
    }
    if (a->cur == NULL || a->cur->size - a->cur->used < need) {
        // The tail of the chunk we leave counts as live until the next rewind: it is unusable.
        if (a->cur != NULL) {
            a->live += a->cur->size - a->cur->used;
            a->cur->used = a->cur->size;
        }
        chunk_t *next = a->cur ? a->cur->next : a->head;
        if (next != NULL && next->size >= need) {
            a->cur = next; // emptied by the last rewind
        } else {
            SS_TRY(arena_new_chunk(a, need, err));
        }
    }
    *out = chunk_data(a->cur) + a->cur->used;
    a->cur->used += need;
    a->live += need;
    if (a->live > a->peak) {
        a->peak = a->live;
    }
    return SS_OK;
}

ss_status_t ss_arena_calloc(ss_arena_t *a, size_t bytes, void **out, ss_error_t *err)
{
    SS_TRY(ss_arena_alloc(a, bytes, out, err));
    memset(*out, 0, bytes);
    return SS_OK;
}

ss_arena_mark_t ss_arena_mark(const ss_arena_t *a)
{
    ss_arena_mark_t m = {a->cur, a->cur ? a->cur->used : 0, a->live};
    return m;
}

void ss_arena_rewind(ss_arena_t *a, ss_arena_mark_t m)
{
    chunk_t *c = m.chunk ? ((chunk_t *)m.chunk)->next : a->head;
    for (; c != NULL; c = c->next) {
        c->used = 0;
    }
    if (m.chunk != NULL) {
        ((chunk_t *)m.chunk)->used = m.used;
    }
    a->cur = m.chunk;
    a->live = m.live;
}

size_t ss_arena_live(const ss_arena_t *a)
{
    return a->live;
}

size_t ss_arena_peak(const ss_arena_t *a)
{
    return a->peak;
}

size_t ss_arena_reserved(const ss_arena_t *a)
{
    return a->reserved;
}

ss_status_t ss_bytes_parse(const char *s, const char *what, size_t *out, ss_error_t *err)
{
    const char *name = what ? what : "size";
    if (s == NULL || *s == '\0') {
        SS_FAIL(err, SS_EINVAL, "%s: empty size; give a byte count such as 512M or 12G", name);
    }
    errno = 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || errno != 0 || !(v >= 0) || !isfinite(v)) {
        SS_FAIL(err, SS_EINVAL, "%s: '%s' is not a size; give a byte count such as 512M or 12G",
                name, s);
    }
    double mult = 1;
    switch (toupper((unsigned char)*end)) {
    case 'K':
        mult = 1024.0;
        end++;
        break;
    case 'M':
        mult = 1024.0 * 1024;
        end++;
        break;
    case 'G':
        mult = 1024.0 * 1024 * 1024;
        end++;
        break;
    case 'T':
        mult = 1024.0 * 1024 * 1024 * 1024;
        end++;
        break;
    default:
        break;
    }
    if (mult > 1 && toupper((unsigned char)*end) == 'I') {
        end++;
    }
    if (toupper((unsigned char)*end) == 'B') {
        end++;
    }
    double bytes = v * mult;
    if (*end != '\0' || bytes > 1.8e19) {
        SS_FAIL(err, SS_EINVAL, "%s: '%s' is not a size; give a byte count such as 512M or 12G",
                name, s);
    }
    *out = (size_t)bytes;
    return SS_OK;
}

void ss_bytes_format(size_t bytes, char *buf, size_t len)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0) {
        snprintf(buf, len, "%zu B", bytes);
    } else {
        snprintf(buf, len, "%.2f %s", v, units[u]);
    }
}
