#ifndef SS_H5DATA_H
#define SS_H5DATA_H
#endif
