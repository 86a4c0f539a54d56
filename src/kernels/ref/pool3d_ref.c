#include "pool3d_ref.h"
