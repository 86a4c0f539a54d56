#ifndef SS_PREPROCESS_H
#define SS_PREPROCESS_H
#endif
