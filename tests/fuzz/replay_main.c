/*
 * Corpus replay driver: links with one fuzz target when the compiler is not clang (or fuzzing
 * is off) and feeds it every file of the corpus folders given on the command line. It turns
 * each fuzz corpus into a regression test that runs in `make test`, under ASan in that build.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return -1;
    }
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            uint8_t *nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return -1;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        if (n == 0) {
            break;
        }
        len += n;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 0;
}

static int replay_path(const char *path, int *passed, int *failed)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: no such corpus %s\n", path);
        (*failed)++;
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        if (replay_file(path) == 0) {
            (*passed)++;
        } else {
            (*failed)++;
        }
        return 0;
    }
    DIR *d = opendir(path);
    if (d == NULL) {
        (*failed)++;
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }
        char child[4096];
        snprintf(child, sizeof(child), "%s/%s", path, de->d_name);
        replay_path(child, passed, failed);
    }
    closedir(d);
    return 0;
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    for (int i = 1; i < argc; i++) {
        replay_path(argv[i], &passed, &failed);
    }
    /* An input that crashes never gets here; reaching the end means every input ran clean. */
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}
