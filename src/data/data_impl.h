// data_impl.h: small file-system helpers shared inside src/data (not installed).
#ifndef SS_DATA_IMPL_H
#define SS_DATA_IMPL_H

// printf into a malloc'd string (NULL when out of memory).
char *ss__dup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// 1 if path is a regular file / a directory.
int ss__is_file(const char *path);
int ss__is_dir(const char *path);

#endif
