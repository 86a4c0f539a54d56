#ifndef SS_LAYOUT_H
#define SS_LAYOUT_H
#endif
