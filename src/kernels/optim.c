// optim: placeholder until the kernel lands.
#include "shardseg/optim.h"
