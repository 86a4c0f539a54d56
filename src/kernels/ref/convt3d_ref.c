#include "convt3d_ref.h"
