// attention: placeholder until the kernel lands.
#include "shardseg/attention.h"
