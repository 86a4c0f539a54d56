#ifndef SS_CONVT3D_H
#define SS_CONVT3D_H
#endif
