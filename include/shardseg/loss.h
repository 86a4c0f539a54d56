#ifndef SS_LOSS_H
#define SS_LOSS_H
#endif
