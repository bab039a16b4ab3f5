/*
 * rss.c: peak and current RSS from /proc/self/status (kB fields VmHWM / VmRSS), with getrusage()
 * as the fallback for the peak (ru_maxrss is in kB on Linux).
 */
#include "core/rss.h"

#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

/* Reads "<field>:   <n> kB" from /proc/self/status; false when absent. */
static bool read_status_kb(const char *field, uint64_t *out_kb) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return false;
    char line[256];
    size_t field_len = strlen(field);
    bool found = false;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, field_len) != 0 || line[field_len] != ':') continue;
        uint64_t kb;
        if (sscanf(line + field_len + 1, "%" SCNu64, &kb) == 1) {
            *out_kb = kb;
            found = true;
        }
        break;
    }
    fclose(f);
    return found;
}

bn_status bn_peak_rss_bytes(uint64_t *out, bn_error *err) {
    uint64_t kb;
    if (read_status_kb("VmHWM", &kb)) {
        *out = kb * 1024u;
        return BN_OK;
    }
    struct rusage usage;
    if (getrusage(RUSAGE_SELF, &usage) != 0)
        return bn_error_set(err, BN_ERR_IO, "getrusage failed: %s", strerror(errno));
    *out = (uint64_t)usage.ru_maxrss * 1024u;
    return BN_OK;
}

bn_status bn_current_rss_bytes(uint64_t *out, bn_error *err) {
    uint64_t kb;
    if (!read_status_kb("VmRSS", &kb))
        return bn_error_set(err, BN_ERR_UNSUPPORTED, "/proc/self/status has no VmRSS field");
    *out = kb * 1024u;
    return BN_OK;
}
