// comm.h: the process mesh and the MPI entry points (the dist layer; the only place MPI lives).
//
// ss_dist_init() starts MPI (MPI_THREAD_FUNNELED: only the main thread calls MPI, never inside an
// OpenMP region) and returns the world communicator as an opaque ss_comm_t. Later issues add the
// experiment x data x sequence mesh; everything that communicates takes an ss_comm_t explicitly,
// so every function also runs on a single-rank communicator (ss_comm_self()).
//
// Errors: communicators use MPI_ERRORS_RETURN; every failure becomes SS_EMPI with the text of
// MPI_Error_string. Each function is marked LOCAL or COLLECTIVE over the communicator it takes.
// Ownership: ss_dist_init's world is owned by the dist layer and freed by ss_dist_finalize.
#ifndef SS_COMM_H
#define SS_COMM_H

#include <stddef.h>

#include "shardseg/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ss_comm ss_comm_t;

// COLLECTIVE over all processes. Initialises MPI if it is not yet and returns the world
// communicator in *world. argc/argv may be NULL.
ss_status_t ss_dist_init(int *argc, char ***argv, ss_comm_t **world, ss_error_t *err);
// COLLECTIVE. Frees the communicators made by the dist layer and finalizes MPI (if we started it).
void ss_dist_finalize(void);
// LOCAL. Ends the whole job with a non-zero code: the CLI's last resort after logging an error
// on one rank, since a rank that just exits would leave the others hanging in a collective.
void ss_dist_abort(int code);
// LOCAL. 1 when the process was started by mpirun/srun with more than one rank (or MPI is up).
int ss_dist_launched(void);

// LOCAL. A communicator holding only this process (no MPI required).
ss_comm_t *ss_comm_self(void);
int ss_comm_rank(const ss_comm_t *c);
int ss_comm_size(const ss_comm_t *c);

// COLLECTIVE over c. In-place sum of n doubles / floats across c.
ss_status_t ss_comm_allreduce_sum_f64(ss_comm_t *c, double *buf, size_t n, ss_error_t *err);
ss_status_t ss_comm_allreduce_sum_f32(ss_comm_t *c, float *buf, size_t n, ss_error_t *err);
// COLLECTIVE over c. Maximum of one double.
ss_status_t ss_comm_allreduce_max_f64(ss_comm_t *c, double *v, ss_error_t *err);
// COLLECTIVE over c.
ss_status_t ss_comm_barrier(ss_comm_t *c, ss_error_t *err);
// COLLECTIVE over c. Broadcast of n bytes from root.
ss_status_t ss_comm_bcast(ss_comm_t *c, void *buf, size_t n, int root, ss_error_t *err);

// COLLECTIVE over c. Gathers n bytes from every rank into recv on root, rank r's bytes at
// recv + r * n (recv: n * size bytes, used on root only; may be NULL elsewhere).
ss_status_t ss_comm_gather_bytes(
    ss_comm_t *c, const void *send, size_t n, void *recv, int root, ss_error_t *err);
// COLLECTIVE over c. Agrees on the outcome of a step every rank ran, so that all ranks take the
// same branch afterwards (go on, or clean up and stop) and no rank waits in a collective the
// others have left. local is this rank's status (its record in *err when it failed). Returns
// SS_OK when every rank passed SS_OK; otherwise the status of the lowest failing rank, and *err
// on every rank becomes that rank's record (code, lib_code, line and message; file and func
// read "(another rank)" on the others).
// A failure of MPI itself returns SS_EMPI. err may be NULL on ranks that passed SS_OK.
ss_status_t ss_comm_agree(ss_comm_t *c, ss_status_t local, ss_error_t *err);

// LOCAL. "Open MPI v4.1.4" or similar.
void ss_dist_library_version(char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
