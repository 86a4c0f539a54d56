#include "shardseg/comm.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

struct ss_comm {
    MPI_Comm mpi; // MPI_COMM_NULL for the MPI-free self communicator
    int rank;
    int size;
    int owned; // 1 if we must MPI_Comm_free it
};

static struct ss_comm g_self = {MPI_COMM_NULL, 0, 1, 0};
static struct ss_comm g_world = {MPI_COMM_NULL, 0, 1, 0};
static int g_we_initialized;

static ss_status_t mpi_fail(ss_error_t *err, int rc, const char *what, const char *file, int line)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) {
        snprintf(text, sizeof(text), "MPI error %d", rc);
    }
    return ss_error_set(err, SS_EMPI, rc, file, line, what, "%s: %s", what, text);
}

#define SS_MPI_TRY(call)                                                                           \
    do {                                                                                           \
        int mpi_rc_ = (call);                                                                      \
        if (mpi_rc_ != MPI_SUCCESS) {                                                              \
            return mpi_fail(err, mpi_rc_, #call, __FILE__, __LINE__);                              \
        }                                                                                          \
    } while (0)

ss_status_t ss_dist_init(int *argc, char ***argv, ss_comm_t **world, ss_error_t *err)
{
    int up = 0;
    MPI_Initialized(&up);
    if (!up) {
        int provided = 0;
        int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) {
            SS_FAIL_LIB(err, SS_EMPI, rc,
                        "MPI_Init_thread failed; check the mpirun/srun launch and the MPI install");
        }
        g_we_initialized = 1;
        if (provided < MPI_THREAD_FUNNELED) {
            SS_FAIL(err, SS_EMPI,
                    "the MPI library does not provide MPI_THREAD_FUNNELED; "
                    "use an MPI built with thread support");
        }
    }
    if (g_world.mpi == MPI_COMM_NULL) {
        SS_MPI_TRY(MPI_Comm_dup(MPI_COMM_WORLD, &g_world.mpi));
        SS_MPI_TRY(MPI_Comm_set_errhandler(g_world.mpi, MPI_ERRORS_RETURN));
        SS_MPI_TRY(MPI_Comm_rank(g_world.mpi, &g_world.rank));
        SS_MPI_TRY(MPI_Comm_size(g_world.mpi, &g_world.size));
        g_world.owned = 1;
    }
    *world = &g_world;
    return SS_OK;
}

void ss_dist_finalize(void)
{
    int up = 0, down = 0;
    MPI_Initialized(&up);
    MPI_Finalized(&down);
    if (!up || down) {
        return;
    }
    if (g_world.owned) {
        MPI_Comm_free(&g_world.mpi);
        g_world.owned = 0;
    }
    if (g_we_initialized) {
        MPI_Finalize();
    }
}

void ss_dist_abort(int code)
{
    int up = 0, down = 0;
    MPI_Initialized(&up);
    MPI_Finalized(&down);
    if (up && !down) {
        int size = 1;
        MPI_Comm_size(MPI_COMM_WORLD, &size);
        if (size > 1) {
            MPI_Abort(MPI_COMM_WORLD, code);
        }
    }
    // A single rank ends normally, so the CLI's exit code reaches the shell unchanged.
}

int ss_dist_launched(void)
{
    int up = 0;
    MPI_Initialized(&up);
    if (up) {
        return 1;
    }
    // Launchers set these before exec; without them we are a plain singleton process.
    return getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMI_SIZE") != NULL ||
           getenv("PMIX_RANK") != NULL || getenv("SLURM_STEP_NUM_TASKS") != NULL;
}

ss_comm_t *ss_comm_self(void)
{
    return &g_self;
}

int ss_comm_rank(const ss_comm_t *c)
{
    return c->rank;
}

int ss_comm_size(const ss_comm_t *c)
{
    return c->size;
}

// MPI counts are int; reduce large buffers in pieces so n above INT_MAX still works.
static ss_status_t allreduce_chunks(
    ss_comm_t *c, void *buf, size_t n, size_t elem, MPI_Datatype type, MPI_Op op, ss_error_t *err)
{
    if (c->size == 1 || n == 0) {
        return SS_OK;
    }
    const size_t max_chunk = (size_t)INT_MAX / 2;
    for (size_t off = 0; off < n; off += max_chunk) {
        size_t cnt = n - off < max_chunk ? n - off : max_chunk;
        SS_MPI_TRY(
            MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * elem, (int)cnt, type, op, c->mpi));
    }
    return SS_OK;
}

ss_status_t ss_comm_allreduce_sum_f64(ss_comm_t *c, double *buf, size_t n, ss_error_t *err)
{
    return allreduce_chunks(c, buf, n, sizeof(double), MPI_DOUBLE, MPI_SUM, err);
}

ss_status_t ss_comm_allreduce_sum_f32(ss_comm_t *c, float *buf, size_t n, ss_error_t *err)
{
    return allreduce_chunks(c, buf, n, sizeof(float), MPI_FLOAT, MPI_SUM, err);
}

ss_status_t ss_comm_allreduce_max_f64(ss_comm_t *c, double *v, ss_error_t *err)
{
    return allreduce_chunks(c, v, 1, sizeof(double), MPI_DOUBLE, MPI_MAX, err);
}

ss_status_t ss_comm_barrier(ss_comm_t *c, ss_error_t *err)
{
    if (c->size > 1) {
        SS_MPI_TRY(MPI_Barrier(c->mpi));
    }
    return SS_OK;
}

ss_status_t ss_comm_bcast(ss_comm_t *c, void *buf, size_t n, int root, ss_error_t *err)
{
    if (c->size == 1 || n == 0) {
        return SS_OK;
    }
    if (n > (size_t)INT_MAX) {
        SS_FAIL(err, SS_EINVAL, "broadcast of %zu bytes exceeds the MPI count limit", n);
    }
    SS_MPI_TRY(MPI_Bcast(buf, (int)n, MPI_BYTE, root, c->mpi));
    return SS_OK;
}

ss_status_t ss_comm_gather_bytes(
    ss_comm_t *c, const void *send, size_t n, void *recv, int root, ss_error_t *err)
{
    if (c->size == 1) {
        if (n > 0) {
            memcpy(recv, send, n);
        }
        return SS_OK;
    }
    if (n > (size_t)INT_MAX) {
        SS_FAIL(err, SS_EINVAL, "gather of %zu bytes per rank exceeds the MPI count limit", n);
    }
    SS_MPI_TRY(MPI_Gather(send, (int)n, MPI_BYTE, recv, (int)n, MPI_BYTE, root, c->mpi));
    return SS_OK;
}

// What crosses ranks of an error record: pointers (file, func) are meaningless in another process.
typedef struct {
    int code;
    int line;
    long lib_code;
    char msg[SS_ERROR_MSG_MAX];
} agree_record_t;

ss_status_t ss_comm_agree(ss_comm_t *c, ss_status_t local, ss_error_t *err)
{
    if (c->size == 1) {
        return local;
    }
    // The lowest failing rank speaks for all: deterministic, and with round-robin work it is
    // the first failing item in serial order.
    int first = local != SS_OK ? c->rank : c->size;
    SS_MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, c->mpi));
    if (first == c->size) {
        return SS_OK;
    }
    agree_record_t rec;
    memset(&rec, 0, sizeof(rec));
    if (c->rank == first) {
        rec.code = (int)local;
        if (err != NULL) {
            rec.line = err->line;
            rec.lib_code = err->lib_code;
            memcpy(rec.msg, err->msg, sizeof(rec.msg));
        }
    }
    SS_MPI_TRY(MPI_Bcast(&rec, (int)sizeof(rec), MPI_BYTE, first, c->mpi));
    if (c->rank != first) {
        static const char *const from = "(another rank)";
        ss_error_set(err, (ss_status_t)rec.code, rec.lib_code, from, rec.line, from, "%s", rec.msg);
    }
    return (ss_status_t)rec.code;
}

void ss_dist_library_version(char *buf, size_t len)
{
    char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int n = 0;
    MPI_Get_library_version(v, &n);
    char *nl = strchr(v, ',');
    if (nl != NULL) {
        *nl = '\0';
    }
    snprintf(buf, len, "%s", v);
}
