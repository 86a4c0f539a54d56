#include "attention_ref.h"
