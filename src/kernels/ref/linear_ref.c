#include "linear_ref.h"
