// linear: placeholder until the kernel lands.
#include "shardseg/linear.h"
