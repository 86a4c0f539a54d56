// status.h: status codes and the error record every fallible shardseg call fills.
//
// Every fallible function returns ss_status_t (SS_OK == 0, failures negative) and takes an
// optional `ss_error_t *err` as its last parameter. On failure the callee records the code, the
// raw library code (errno, MPI, HDF5), where it happened and a one-line message that names the
// file or option at fault and says what to do. Library code never prints or exits: the CLI turns
// the record into the user-facing line `shardseg: <message>`.
//
// Threading: an ss_error_t belongs to one thread; functions are reentrant.
#ifndef SS_STATUS_H
#define SS_STATUS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// XX(name, value, description)
#define SS_STATUS_MAP(XX)                                                                          \
    XX(SS_OK, 0, "success")                                                                        \
    XX(SS_EINVAL, -1, "invalid argument")                                                          \
    XX(SS_ENOMEM, -2, "out of memory or over the memory budget")                                   \
    XX(SS_EIO, -3, "input/output error")                                                           \
    XX(SS_EFORMAT, -4, "malformed file")                                                           \
    XX(SS_ESHAPE, -5, "shape mismatch")                                                            \
    XX(SS_EMPI, -6, "MPI error")                                                                   \
    XX(SS_EHDF5, -7, "HDF5 error")                                                                 \
    XX(SS_ENIFTI, -8, "NIfTI error")                                                               \
    XX(SS_ENUMERIC, -9, "non-finite value")                                                        \
    XX(SS_EUNSUPPORTED, -10, "not supported")                                                      \
    XX(SS_ECANCELLED, -11, "cancelled")

typedef enum {
#define SS_STATUS_ENUM(name, value, desc) name = value,
    SS_STATUS_MAP(SS_STATUS_ENUM)
#undef SS_STATUS_ENUM
} ss_status_t;

#define SS_ERROR_MSG_MAX 256

typedef struct {
    ss_status_t code;
    long lib_code;    // errno / MPI / HDF5 code behind the failure, 0 when none
    const char *file; // source location that recorded the failure (static strings)
    int line;
    const char *func;
    char msg[SS_ERROR_MSG_MAX];
} ss_error_t;

// "SS_EINVAL" for SS_EINVAL; "SS_UNKNOWN" for a value outside the map.
const char *ss_status_name(ss_status_t code);
// Human description ("invalid argument").
const char *ss_status_str(ss_status_t code);

// Resets *err to SS_OK with an empty message. err may be NULL.
void ss_error_clear(ss_error_t *err);

// Records a failure in *err (if err is not NULL) and returns code. The message is formatted
// printf-style and truncated to SS_ERROR_MSG_MAX-1 bytes. Use through SS_FAIL.
ss_status_t ss_error_set(ss_error_t *err,
                         ss_status_t code,
                         long lib_code,
                         const char *file,
                         int line,
                         const char *func,
                         const char *fmt,
                         ...) __attribute__((format(printf, 7, 8)));

// Prepends "context: " to an already recorded message, so callers higher up can say which file
// or option the low-level failure belongs to. Returns err->code (SS_OK if err is NULL).
ss_status_t ss_error_prefix(ss_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

// Writes "<msg> [<SS_NAME> at file:line]" (or just "<msg>" when verbose is 0) into buf.
// Returns the number of bytes written, excluding the terminating NUL.
size_t ss_error_format(const ss_error_t *err, int verbose, char *buf, size_t len);

// Record an error and return its code from the current function.
#define SS_FAIL(err, code, ...)                                                                    \
    do {                                                                                           \
        return ss_error_set((err), (code), 0, __FILE__, __LINE__, __func__, __VA_ARGS__);          \
    } while (0)

// Same as SS_FAIL, keeping the underlying library's code (errno, MPI error, HDF5 error number).
#define SS_FAIL_LIB(err, code, lib, ...)                                                           \
    do {                                                                                           \
        return ss_error_set((err), (code), (long)(lib), __FILE__, __LINE__, __func__,              \
                            __VA_ARGS__);                                                          \
    } while (0)

// Evaluate a call returning ss_status_t and return its code if it failed.
#define SS_TRY(expr)                                                                               \
    do {                                                                                           \
        ss_status_t ss_try_status_ = (expr);                                                       \
        if (ss_try_status_ != SS_OK) {                                                             \
            return ss_try_status_;                                                                 \
        }                                                                                          \
    } while (0)

// Contract checks inside hot kernels: compiled in only with --enable-debug. Violations are bugs,
// not input errors, so they trap instead of returning a status.
#ifdef SS_DEBUG
#    define SS_ASSERT(cond)                                                                        \
        do {                                                                                       \
            if (!(cond)) {                                                                         \
                __builtin_trap();                                                                  \
            }                                                                                      \
        } while (0)
#else
#    define SS_ASSERT(cond)                                                                        \
        do {                                                                                       \
            (void)sizeof(cond);                                                                    \
        } while (0)
#endif

#ifdef __cplusplus
}
#endif
#endif
