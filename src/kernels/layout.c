// layout: placeholder until the kernel lands.
#include "shardseg/layout.h"
