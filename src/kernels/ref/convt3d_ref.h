#ifndef SS_CONVT3D_REF_H
#define SS_CONVT3D_REF_H
#endif
