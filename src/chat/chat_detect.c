/*
 * chat_detect.c: a model file's metadata -> its chat format (bn_chat_format_for_gguf, chat.h).
 * Reads the strings bn_chat_format_choose looks at, as NUL-terminated copies (a GGUF string is
 * not terminated, and may contain a NUL: the copy then ends there, which only hides markers after
 * it). Nothing read here is printed.
 */
#include "chat/chat.h"

#include <stdlib.h>
#include <string.h>

enum { N_KEYS = 6 };

bn_status bn_chat_format_for_gguf(bn_chat_choice *out, const bn_gguf *gguf, bn_error *err) {
    static const char *const keys[N_KEYS] = {"tokenizer.chat_template", "general.architecture", "general.name",
                                             "general.finetune",        "general.basename",     "tokenizer.ggml.pre"};
    char *values[N_KEYS] = {0};
    bn_status st = BN_OK;
    for (int i = 0; i < N_KEYS && st == BN_OK; i++) {
        const bn_gguf_kv *kv = gguf ? bn_gguf_find_kv(gguf, keys[i]) : NULL;
        if (!kv || kv->value.type != BN_GGUF_STRING) continue;
        values[i] = strndup(kv->value.as.str.data, kv->value.as.str.len);
        if (!values[i]) st = bn_error_set(err, BN_ERR_NOMEM, "out of memory for %s", keys[i]);
    }
    if (st == BN_OK) {
        const bn_chat_model_info info = {.chat_template = values[0], .architecture = values[1], .name = values[2],
                                         .finetune = values[3], .basename = values[4], .pre_tokenizer = values[5]};
        *out = bn_chat_format_choose(&info);
    }
    for (int i = 0; i < N_KEYS; i++) free(values[i]);
    return st;
}
