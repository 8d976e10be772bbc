/* String-keyed hash map for the stores' indexes; see map.h. Load factor is kept under 3/4 so
 * probe sequences stay short; deletion shifts later entries back instead of leaving
 * tombstones, so a map that sees many inserts and deletes (runs come and go) never degrades. */
#include <string.h>

#include "cgw/error.h"
#include "core/alloc.h"
#include "store/map.h"

/* FNV-1a: short ids, no adversarial keys (ids are random or validated), good enough. */
static size_t hash_str(const char *s)
{
    size_t h = (size_t)14695981039346656037ULL;
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= (size_t)1099511628211ULL;
    }
    return h;
}

static size_t find_slot(const cgw_map_slot_t *slots, size_t cap, const char *key)
{
    size_t i = hash_str(key) & (cap - 1);
    while (slots[i].key != NULL && strcmp(slots[i].key, key) != 0) {
        i = (i + 1) & (cap - 1);
    }
    return i;
}

void *cgw__map_get(const cgw_map_t *m, const char *key)
{
    if (m->cap == 0) {
        return NULL;
    }
    size_t i = find_slot(m->slots, m->cap, key);
    return m->slots[i].key != NULL ? m->slots[i].value : NULL;
}

static int grow(cgw_map_t *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    cgw_map_slot_t *slots = cgw__calloc(cap, sizeof(*slots));
    if (slots == NULL) {
        return CGW_ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].key != NULL) {
            slots[find_slot(slots, cap, m->slots[i].key)] = m->slots[i];
        }
    }
    cgw_free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return CGW_OK;
}

int cgw__map_put(cgw_map_t *m, const char *key, void *value)
{
    if ((m->len + 1) * 4 > m->cap * 3) {
        int rc = grow(m);
        if (rc != CGW_OK) {
            return rc;
        }
    }
    size_t i = find_slot(m->slots, m->cap, key);
    if (m->slots[i].key == NULL) {
        m->len++;
    }
    m->slots[i].key = key;
    m->slots[i].value = value;
    return CGW_OK;
}

void *cgw__map_del(cgw_map_t *m, const char *key)
{
    if (m->cap == 0) {
        return NULL;
    }
    size_t mask = m->cap - 1;
    size_t i = find_slot(m->slots, m->cap, key);
    if (m->slots[i].key == NULL) {
        return NULL;
    }
    void *value = m->slots[i].value;
    /* Backward shift: move every later entry of the cluster whose home is not between the
     * hole and itself into the hole. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (m->slots[j].key == NULL) {
            break;
        }
        size_t home = hash_str(m->slots[j].key) & mask;
        bool stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].key = NULL;
    m->slots[i].value = NULL;
    m->len--;
    return value;
}

void cgw__map_free(cgw_map_t *m)
{
    cgw_free(m->slots);
    m->slots = NULL;
    m->cap = 0;
    m->len = 0;
}
