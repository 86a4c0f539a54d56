// dataset: placeholder until the module lands.
#include "shardseg/dataset.h"
