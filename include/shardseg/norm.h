#ifndef SS_NORM_H
#define SS_NORM_H
#endif
