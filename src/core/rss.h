/*
 * rss.h: the process's peak resident set size, for receipts and the RSS budget checks. Linux
 * reports it as VmHWM in /proc/self/status; elsewhere getrusage's ru_maxrss is used.
 */
#ifndef BN_CORE_RSS_H
#define BN_CORE_RSS_H

#include "bitnet.h"

#include <stdint.h>

/* Peak RSS of this process in bytes since it started. */
bn_status bn_peak_rss_bytes(uint64_t *out, bn_error *err);
/* Current RSS in bytes (VmRSS); BN_ERR_UNSUPPORTED where /proc is missing. */
bn_status bn_current_rss_bytes(uint64_t *out, bn_error *err);

#endif
