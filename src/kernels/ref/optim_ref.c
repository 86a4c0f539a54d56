#include "optim_ref.h"
