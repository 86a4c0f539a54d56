#include "norm_ref.h"
