// pool3d: placeholder until the kernel lands.
#include "shardseg/pool3d.h"
