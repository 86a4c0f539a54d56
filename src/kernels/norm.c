// norm: placeholder until the kernel lands.
#include "shardseg/norm.h"
