// convt3d: placeholder until the kernel lands.
#include "shardseg/convt3d.h"
