#include "shardseg/version.h"

#include <stdio.h>

#include "config.h"

const char *ss_version(void)
{
    return PACKAGE_VERSION;
}

ss_cpu_features_t ss_cpu_features(void)
{
    ss_cpu_features_t f = {0, 0, 0, 0, 0};
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    f.avx2 = __builtin_cpu_supports("avx2");
    f.fma = __builtin_cpu_supports("fma");
    f.avx512f = __builtin_cpu_supports("avx512f");
#    if defined(__GNUC__) && __GNUC__ >= 12
    f.avx512_bf16 = __builtin_cpu_supports("avx512bf16");
    f.amx_tile = __builtin_cpu_supports("amx-tile");
#    endif
#endif
    return f;
}

void ss_build_info(char *buf, size_t len)
{
    ss_cpu_features_t f = ss_cpu_features();
    snprintf(buf, len, "gcc %d.%d, OpenMP %d; cpu:%s%s%s%s%s", __GNUC__, __GNUC_MINOR__, _OPENMP,
             f.avx2 ? " avx2" : "", f.fma ? " fma" : "", f.avx512f ? " avx512f" : "",
             f.avx512_bf16 ? " avx512bf16" : "", f.amx_tile ? " amx" : "");
}
