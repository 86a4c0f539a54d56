#ifndef SS_SYNTH_H
#define SS_SYNTH_H
#endif
