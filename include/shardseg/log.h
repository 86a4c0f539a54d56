// log.h: rank-aware logging to stderr.
//
// The logging configuration is the one mutable global of shardseg (a static struct in
// src/core/log.c). Until the CLI calls ss_log_configure() nothing is printed, so library code is
// silent when embedded elsewhere. INFO and DEBUG are shown on rank 0 only by default; WARN and
// ERROR on every rank. DEBUG lines and errors carry "[time] [rank r] [file:line]".
//
// Threading: ss_log_write may be called from any thread; lines are written with one fputs so they
// do not interleave. It must not be called inside an OpenMP parallel region of a hot kernel.
#ifndef SS_LOG_H
#define SS_LOG_H

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SS_LOG_LEVEL_OFF = 0,
    SS_LOG_LEVEL_ERROR = 1,
    SS_LOG_LEVEL_WARN = 2,
    SS_LOG_LEVEL_INFO = 3,
    SS_LOG_LEVEL_DEBUG = 4,
} ss_log_level_t;

typedef struct {
    ss_log_level_t level; // messages above this level are dropped
    FILE *sink;           // NULL: stderr
    int rank;             // this process's rank in MPI_COMM_WORLD (0 without MPI)
    int rank0_only;       // 1: INFO/DEBUG only on rank 0
} ss_log_config_t;

// Sets the global logging configuration (copies *cfg). Not thread-safe: call at start-up.
void ss_log_configure(const ss_log_config_t *cfg);
// Current configuration (a copy).
ss_log_config_t ss_log_config(void);
// 1 if a message of this level would be printed on this rank.
int ss_log_enabled(ss_log_level_t level);

void ss_log_write(ss_log_level_t level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define SS_LOG_ERROR(...) ss_log_write(SS_LOG_LEVEL_ERROR, __FILE__, __LINE__, __VA_ARGS__)
#define SS_LOG_WARN(...)  ss_log_write(SS_LOG_LEVEL_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define SS_LOG_INFO(...)  ss_log_write(SS_LOG_LEVEL_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define SS_LOG_DEBUG(...) ss_log_write(SS_LOG_LEVEL_DEBUG, __FILE__, __LINE__, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
