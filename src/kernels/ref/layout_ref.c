#include "layout_ref.h"
