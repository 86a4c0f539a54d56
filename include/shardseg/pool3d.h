#ifndef SS_POOL3D_H
#define SS_POOL3D_H
#endif
