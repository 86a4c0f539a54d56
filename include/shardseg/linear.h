#ifndef SS_LINEAR_H
#define SS_LINEAR_H
#endif
