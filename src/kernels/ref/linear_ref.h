#ifndef SS_LINEAR_REF_H
#define SS_LINEAR_REF_H
#endif
