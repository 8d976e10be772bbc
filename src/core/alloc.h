/* Internal allocation helpers; every allocation in the library goes through these so that the
 * hooks of cgw_set_allocator (and later failure-injection tests) see all of it. */
#ifndef CGW_CORE_ALLOC_H
#define CGW_CORE_ALLOC_H

#include <stddef.h>

void *cgw__malloc(size_t size);
void *cgw__calloc(size_t n, size_t size);
void *cgw__realloc(void *ptr, size_t size);
/* NULL in, NULL out; NULL also on allocation failure. */
char *cgw__strdup(const char *s);
char *cgw__strndup(const char *s, size_t n);
/* Duplicates `len` bytes and NUL-terminates them. */
void *cgw__memdup(const void *p, size_t len);

#endif
