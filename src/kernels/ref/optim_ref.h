#ifndef SS_OPTIM_REF_H
#define SS_OPTIM_REF_H
#endif
