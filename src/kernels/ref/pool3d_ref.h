#ifndef SS_POOL3D_REF_H
#define SS_POOL3D_REF_H
#endif
