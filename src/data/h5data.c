// h5data: placeholder until the module lands.
#include "shardseg/h5data.h"
