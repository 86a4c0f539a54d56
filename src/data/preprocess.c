// preprocess: placeholder until the module lands.
#include "shardseg/preprocess.h"
