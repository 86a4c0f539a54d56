#ifndef SS_ACT_H
#define SS_ACT_H
#endif
