/* Allocator hooks. The hooks are the one piece of process-wide state, set once before use
 * (the same contract as jansson's json_set_alloc_funcs, which we forward to). */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cgw/common.h"
#include "cgw/error.h"
#include "core/alloc.h"

static struct {
    cgw_malloc_fn malloc_fn;
    cgw_realloc_fn realloc_fn;
    cgw_free_fn free_fn;
    int used;
} hooks = {malloc, realloc, free, 0};

int cgw_set_allocator(cgw_malloc_fn m, cgw_realloc_fn r, cgw_free_fn f)
{
    if (hooks.used) {
        return CGW_EBUSY;
    }
    hooks.malloc_fn = m ? m : malloc;
    hooks.realloc_fn = r ? r : realloc;
    hooks.free_fn = f ? f : free;
    json_set_alloc_funcs(hooks.malloc_fn, hooks.free_fn);
    return CGW_OK;
}

void *cgw__malloc(size_t size)
{
    hooks.used = 1;
    return hooks.malloc_fn(size ? size : 1);
}

void *cgw__calloc(size_t n, size_t size)
{
    if (size != 0 && n > (size_t)-1 / size) {
        return NULL;
    }
    void *p = cgw__malloc(n * size);
    if (p != NULL) {
        memset(p, 0, n * size);
    }
    return p;
}

void *cgw__realloc(void *ptr, size_t size)
{
    hooks.used = 1;
    return hooks.realloc_fn(ptr, size ? size : 1);
}

void cgw_free(void *ptr)
{
    if (ptr != NULL) {
        hooks.free_fn(ptr);
    }
}

void *cgw__memdup(const void *p, size_t len)
{
    char *d = cgw__malloc(len + 1);
    if (d != NULL) {
        if (len) {
            memcpy(d, p, len);
        }
        d[len] = '\0';
    }
    return d;
}

char *cgw__strdup(const char *s)
{
    return s ? cgw__memdup(s, strlen(s)) : NULL;
}

char *cgw__strndup(const char *s, size_t n)
{
    return s ? cgw__memdup(s, strnlen(s, n)) : NULL;
}
