#include "loss_ref.h"
