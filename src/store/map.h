/* A small string-keyed hash map (open addressing, linear probing, backward-shift deletion) for
 * the stores' id -> object indexes. Keys are borrowed: each key must live inside (or as long
 * as) its value, which is how the stores use it (the key is the object's own id). */
#ifndef CGW_STORE_MAP_H
#define CGW_STORE_MAP_H

#include <stddef.h>

typedef struct cgw_map_slot {
    const char *key; /* NULL = empty */
    void *value;
} cgw_map_slot_t;

typedef struct cgw_map {
    cgw_map_slot_t *slots;
    size_t cap; /* power of two, or 0 before the first insert */
    size_t len;
} cgw_map_t;

#define CGW_MAP_INIT                                                                               \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* The value stored under `key`, or NULL. */
void *cgw__map_get(const cgw_map_t *m, const char *key);
/* Inserts or replaces. CGW_OK or CGW_ENOMEM (the map is unchanged then). */
int cgw__map_put(cgw_map_t *m, const char *key, void *value);
/* Removes `key` and returns its value (NULL if absent). */
void *cgw__map_del(cgw_map_t *m, const char *key);
/* Empties the map and releases its table (values are the caller's). */
void cgw__map_free(cgw_map_t *m);

#endif
