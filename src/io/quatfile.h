/* ewald io: lists of orientations (unit quaternions w, x, y, z; particle ->
 * lab, geom.h) from the files tools exchange them in:
 *  - CXI files: /entry_1/ground_truth/quaternions (N, 4);
 *  - NumPy .npy arrays of shape (N, 4) (any numeric dtype);
 *  - text tables: one "w x y z" per line (blanks, tabs or commas between
 *    the numbers), '#' starts a comment, blank lines are skipped.
 * Every quaternion must be finite and non-zero; it is normalised.
 */
#ifndef EW_IO_QUATFILE_H
#define EW_IO_QUATFILE_H

#include <stddef.h>

#include "geom/geom.h"

/* Read the quaternions of path (format by content: HDF5 signature -> CXI,
 * NumPy magic -> .npy, else text). *q receives n quaternions
 * (ew_alloc_array'd; free with ew_free). On error *q is NULL, *n 0 and the
 * message names the file and the line, row or dataset. */
ew_status_t ew_quat_file_read(const char *path, ew_quat_t **q, size_t *n);

/* Write n quaternions as a text table ("# w x y z" header, %.9f), atomically. */
ew_status_t ew_quat_file_write_text(const char *path, const ew_quat_t *q, size_t n);

#endif
