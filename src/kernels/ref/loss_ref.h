#ifndef SS_LOSS_REF_H
#define SS_LOSS_REF_H
#endif
