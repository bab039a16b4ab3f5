/*
 * routing_key.c: the conversation-prefix hash behind X-Bitnet-Slot-Hint (see routing_key.h).
 */
#include "server/routing_key.h"

#include "core/sha256.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct key_buf {
    unsigned char *data;
    size_t len, cap;
    bool failed;
} key_buf;

static void append(key_buf *b, const void *p, size_t n) {
    if (b->failed) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        unsigned char *grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

bool bn_routing_key(const bn_api_request *r, char key[BN_ROUTING_KEY_SIZE]) {
    key[0] = '\0';
    key_buf b = {0};
    if (r->chat) {
        for (size_t i = 0; i < r->n_messages; i++) {
            const bn_api_message *m = &r->messages[i];
            append(&b, m->role, strlen(m->role));
            append(&b, "\n", 1);
            append(&b, m->content, strlen(m->content) + 1);
            if (!strcmp(m->role, "user")) break;
        }
    } else if (r->n_prompts) {
        const bn_api_prompt *p = &r->prompts[0];
        if (p->is_tokens) {
            size_t n = p->n_ids < BN_ROUTING_KEY_PROMPT_IDS ? p->n_ids : BN_ROUTING_KEY_PROMPT_IDS;
            for (size_t i = 0; i < n; i++) {
                uint32_t v = (uint32_t)p->ids[i];
                unsigned char le[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                                       (unsigned char)(v >> 24)};
                append(&b, le, sizeof le);
            }
        } else {
            append(&b, p->text, p->text_len < BN_ROUTING_KEY_PROMPT_BYTES ? p->text_len : BN_ROUTING_KEY_PROMPT_BYTES);
        }
    }
    char hex[BN_SHA256_HEX_SIZE];
    bool ok = !b.failed && b.len > 0 && bn_sha256_hex(hex, b.data, b.len, NULL) == BN_OK;
    free(b.data);
    if (!ok) return false;
    memcpy(key, hex, BN_ROUTING_KEY_SIZE - 1);
    key[BN_ROUTING_KEY_SIZE - 1] = '\0';
    return true;
}
