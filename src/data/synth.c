// synth: placeholder until the module lands.
#include "shardseg/synth.h"
