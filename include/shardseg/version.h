// version.h: the library's version string and a description of the build (BLAS, HDF5, features).
#ifndef SS_VERSION_H
#define SS_VERSION_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

const char *ss_version(void);
// Writes one line into buf: compiler, OpenMP version and CPU features seen at run time.
void ss_build_info(char *buf, size_t len);

// CPU features detected at run time (not compile time): the machine running us may differ from
// the one that built us.
typedef struct {
    int avx2;
    int fma;
    int avx512f;
    int avx512_bf16;
    int amx_tile;
} ss_cpu_features_t;
ss_cpu_features_t ss_cpu_features(void);

#ifdef __cplusplus
}
#endif
#endif
