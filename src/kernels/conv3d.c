// conv3d: placeholder until the kernel lands.
#include "shardseg/conv3d.h"
