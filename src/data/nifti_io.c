// nifti_io: placeholder until the module lands.
#include "shardseg/nifti_io.h"
