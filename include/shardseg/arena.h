// arena.h: memory budget and 64-byte-aligned bump allocator with peak accounting.
//
// An ss_budget_t is the process's memory allowance (`--mem-limit`). Every large allocation of
// shardseg (parameter slabs, activation arenas, I/O buffers) is charged to it *before* memory is
// requested from the system, so going over the limit is refused with SS_ENOMEM and a message
// naming the request, the limit and the option to change, instead of the OOM killer hours later.
// The budget records current and peak bytes charged.
//
// An ss_arena_t hands out aligned blocks from chunks it owns. Activations and scratch for a
// training step come from an arena: take a mark before the step, rewind to it after, so the step
// loop never calls malloc. Chunks are kept on rewind and reused; the arena's peak is the most
// bytes it ever had handed out at once.
//
// Ownership: ss_arena_create returns an arena owned by the caller, freed by ss_arena_destroy (which
// returns every chunk's bytes to the budget). Memory from ss_arena_alloc is owned by the arena.
// The budget is borrowed by the arena and must outlive it.
// Threading: a budget may be shared by threads (atomic counters); an arena belongs to one thread.
#ifndef SS_ARENA_H
#define SS_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include "shardseg/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SS_ALIGN 64

typedef struct {
    size_t limit;          // 0: unlimited
    _Atomic size_t in_use; // bytes charged now
    _Atomic size_t peak;   // most bytes ever charged at once
} ss_budget_t;

// Initialises a budget with the given limit in bytes (0 = unlimited).
void ss_budget_init(ss_budget_t *b, size_t limit);
// Charges bytes to the budget; SS_ENOMEM (nothing charged) if it would exceed the limit. `what`
// names the request in the error message.
ss_status_t ss_budget_charge(ss_budget_t *b, size_t bytes, const char *what, ss_error_t *err);
// Returns bytes to the budget.
void ss_budget_release(ss_budget_t *b, size_t bytes);
size_t ss_budget_in_use(const ss_budget_t *b);
size_t ss_budget_peak(const ss_budget_t *b);

// Allocates `bytes` aligned to SS_ALIGN, charged to budget b (which may be NULL). Release with
// ss_aligned_free(p, bytes, b). Used for long-lived slabs (parameters, optimizer state).
ss_status_t
ss_aligned_alloc(void **out, size_t bytes, ss_budget_t *b, const char *what, ss_error_t *err);
void ss_aligned_free(void *p, size_t bytes, ss_budget_t *b);

typedef struct ss_arena ss_arena_t;

// A position in an arena, from ss_arena_mark, to rewind to later.
typedef struct {
    void *chunk;
    size_t used;
    size_t live;
} ss_arena_mark_t;

// Creates an arena whose chunks are at least chunk_bytes long (rounded up to SS_ALIGN), charged to
// budget b (may be NULL). No memory is requested until the first allocation.
ss_status_t ss_arena_create(
    size_t chunk_bytes, ss_budget_t *b, const char *name, ss_arena_t **out, ss_error_t *err);
// Frees every chunk and returns the bytes to the budget. Accepts NULL; sets *pa = NULL.
void ss_arena_destroy(ss_arena_t **pa);

// Returns `bytes` bytes aligned to SS_ALIGN (bytes == 0 gives a valid unique pointer). A new chunk
// is charged to the budget when the current one is full; SS_ENOMEM if the budget refuses.
ss_status_t ss_arena_alloc(ss_arena_t *a, size_t bytes, void **out, ss_error_t *err);
// As ss_arena_alloc, zero-filled.
ss_status_t ss_arena_calloc(ss_arena_t *a, size_t bytes, void **out, ss_error_t *err);
ss_arena_mark_t ss_arena_mark(const ss_arena_t *a);
// Forgets every allocation made after the mark; the chunks stay for reuse.
void ss_arena_rewind(ss_arena_t *a, ss_arena_mark_t m);
size_t ss_arena_live(const ss_arena_t *a);     // bytes handed out now (with alignment padding)
size_t ss_arena_peak(const ss_arena_t *a);     // most bytes handed out at once
size_t ss_arena_reserved(const ss_arena_t *a); // bytes in chunks (charged to the budget)

// Parses a byte count: "123", "64K", "512M", "12G", "1.5T" (powers of 1024; optional trailing
// "B" or "iB"). SS_EINVAL with a message naming `what` on anything else.
ss_status_t ss_bytes_parse(const char *s, const char *what, size_t *out, ss_error_t *err);
// Formats bytes as "1.50 GiB" into buf.
void ss_bytes_format(size_t bytes, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
