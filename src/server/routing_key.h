/*
 * routing_key.h: the sticky routing key of a generation request, sent back as the response header
 * X-Bitnet-Slot-Hint, so that a load balancer in front of several replicas can send the next
 * request of the same conversation to the replica whose prompt cache already holds its prefix
 * (deploy/haproxy/haproxy.cfg learns it with `stick store-response`; docs/DEPLOY.md).
 *
 * The rule (documented in docs/DEPLOY.md, so that other balancers can compute it): the first 16
 * hex digits of SHA-256 over
 *   - chat: every message up to and including the first user message, each as its role, a
 *     newline, its flattened content and a NUL byte: every turn of one conversation shares it;
 *   - completions: the first prompt's first 512 bytes (token-id prompts: their first 128 ids as
 *     32-bit little-endian integers): prompts sharing a long preamble share it.
 */
#ifndef BN_SERVER_ROUTING_KEY_H
#define BN_SERVER_ROUTING_KEY_H

#include "server/request.h"

#include <stdbool.h>

#define BN_ROUTING_KEY_SIZE 17 /* 16 hex digits + NUL */
#define BN_ROUTING_KEY_PROMPT_BYTES 512
#define BN_ROUTING_KEY_PROMPT_IDS 128

/* The key of a parsed request; false (and key = "") when there is nothing to hash or no memory. */
bool bn_routing_key(const bn_api_request *r, char key[BN_ROUTING_KEY_SIZE]);

#endif
