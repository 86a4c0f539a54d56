#include "conv3d_ref.h"
