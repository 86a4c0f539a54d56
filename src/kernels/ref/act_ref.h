#ifndef SS_ACT_REF_H
#define SS_ACT_REF_H
#endif
