// act: placeholder until the kernel lands.
#include "shardseg/act.h"
