#include "shardseg/exec.h"

#include <omp.h>

int ss_exec_default_threads(void)
{
    int n = omp_get_max_threads();
    return n > 0 ? n : 1;
}
