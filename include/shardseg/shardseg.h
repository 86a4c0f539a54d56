// shardseg.h: umbrella header for the CLI and external tools. Library code includes the headers
// it uses, one by one, so that its dependencies stay visible.
#ifndef SS_SHARDSEG_H
#define SS_SHARDSEG_H

#include "shardseg/arena.h"
#include "shardseg/blas.h"
#include "shardseg/comm.h"
#include "shardseg/model.h"
#include "shardseg/seq.h"
#include "shardseg/conv3d.h"
#include "shardseg/convt3d.h"
#include "shardseg/layout.h"
#include "shardseg/loss.h"
#include "shardseg/optim.h"
#include "shardseg/pool3d.h"
#include "shardseg/attention.h"
#include "shardseg/norm.h"
#include "shardseg/act.h"
#include "shardseg/linear.h"
#include "shardseg/exec.h"
#include "shardseg/log.h"
#include "shardseg/rng.h"
#include "shardseg/status.h"
#include "shardseg/tensor.h"
#include "shardseg/timer.h"
#include "shardseg/version.h"

#endif
