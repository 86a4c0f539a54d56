#ifndef SS_CONV3D_H
#define SS_CONV3D_H
#endif
