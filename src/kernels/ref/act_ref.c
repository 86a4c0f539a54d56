#include "act_ref.h"
