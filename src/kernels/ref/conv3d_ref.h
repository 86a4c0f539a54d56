#ifndef SS_CONV3D_REF_H
#define SS_CONV3D_REF_H
#endif
