#ifndef SS_DATASET_H
#define SS_DATASET_H
#endif
