// prep.h: the prep pipeline shared by `shardseg prep` and `shardseg bench data` (not installed).
//
// Ranks: cases are dealt round-robin (case i on rank i % P). Rank 0 writes its cases straight
// into the output's temporary file; every other rank writes its cases to a part file of its own
// (a temporary name next to the output, h5data.h), and after a barrier rank 0 copies the parts'
// case groups in (H5Ocopy), writes /split, and renames the output into place. After every step
// the ranks agree on the outcome (ss_comm_agree), so one rank's failure stops all of them, every
// rank holds the same error record (the first failing case in case order, as a serial run would
// report), and no output, temporary or part file remains. The file is the same for any P.
#ifndef SS_CLI_PREP_H
#define SS_CLI_PREP_H

#include <stdint.h>

#include "shardseg/dataset.h"
#include "shardseg/preprocess.h"
#include "shardseg/status.h"

#include "cli.h"

typedef struct {
    const char *in, *out;
    ss_dataset_layout_t layout;
    ss_target_t target;
    int crop_brain; // 1: bounding box of brain and tumour; 0: crop_size, centred
    int64_t crop_size[3];
    double val_fraction;
    int folds;
    uint64_t seed;
} ss_cli_prep_config_t;

typedef struct {
    int cases;                 // prepared, all ranks
    int my_cases;              // prepared by this rank
    double bytes_read;         // NIfTI bytes on disk, all ranks
    double bytes_written;      // size of the output file (rank 0)
    double seconds;            // wall time of the whole run, measured on rank 0
    int64_t lost_label_voxels; // tumour voxels a fixed crop cut away, all ranks
    int ranks;
} ss_cli_prep_stats_t;

// COLLECTIVE over ctx->world. Runs prep as described above. Returns the agreed status; on
// failure *err holds the same record on every rank (the caller prints it once, on rank 0).
ss_status_t ss_cli_prep_run(const ss_cli_ctx_t *ctx,
                            const ss_cli_prep_config_t *cfg,
                            ss_cli_prep_stats_t *st,
                            ss_error_t *err);

#endif
