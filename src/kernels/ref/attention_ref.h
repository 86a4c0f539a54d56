#ifndef SS_ATTENTION_REF_H
#define SS_ATTENTION_REF_H
#endif
