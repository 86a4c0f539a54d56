// exec.h: how a kernel may run: thread count, scratch workspace, cancel flag.
//
// Kernels never read global threading state: the caller says how many OpenMP threads to use and
// hands in scratch memory sized by the kernel's *_workspace_size() function.
// Ownership: everything in ss_exec_t is borrowed.
#ifndef SS_EXEC_H
#define SS_EXEC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int nthreads;               // OpenMP threads a kernel may use (>= 1)
    void *work;                 // scratch, SS_ALIGN-aligned, may be NULL if work_bytes == 0
    size_t work_bytes;          // size of work
    const volatile int *cancel; // non-NULL and non-zero: long kernels return SS_ECANCELLED
} ss_exec_t;

// A single-threaded exec with no workspace.
static inline ss_exec_t ss_exec_serial(void)
{
    ss_exec_t e = {1, NULL, 0, NULL};
    return e;
}

// Threads available to this process: OMP_NUM_THREADS if set, else the cores OpenMP sees.
int ss_exec_default_threads(void);

#ifdef __cplusplus
}
#endif
#endif
