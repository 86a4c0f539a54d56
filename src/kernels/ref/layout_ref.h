#ifndef SS_LAYOUT_REF_H
#define SS_LAYOUT_REF_H
#endif
