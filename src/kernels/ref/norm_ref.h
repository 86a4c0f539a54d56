#ifndef SS_NORM_REF_H
#define SS_NORM_REF_H
#endif
