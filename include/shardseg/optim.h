#ifndef SS_OPTIM_H
#define SS_OPTIM_H
#endif
