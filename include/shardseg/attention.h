#ifndef SS_ATTENTION_H
#define SS_ATTENTION_H
#endif
