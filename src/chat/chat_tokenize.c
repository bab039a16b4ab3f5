/*
 * chat_tokenize.c: rendered chat text to token ids, the format's markup with special tokens and the
 * message content as plain text (see chat.h).
 */
#include "chat/chat.h"

bn_status bn_chat_tokenize(bn_tokens *out, const bn_tokenizer *tok, const bn_chat_format *format,
                           const bn_chat_text *text, size_t from, bool add_bos, bn_error *err) {
    bn_status st;
    if (add_bos && !format->renders_bos && bn_tokenizer_add_bos(tok) && bn_tokenizer_bos(tok) >= 0)
        if ((st = bn_tokens_push(out, bn_tokenizer_bos(tok), err)) != BN_OK) return st;
    size_t pos = from;
    for (size_t i = 0; i <= text->n_content; i++) {
        size_t span_start = i < text->n_content ? text->content[i].offset : text->len;
        size_t span_end = i < text->n_content ? span_start + text->content[i].len : text->len;
        if (span_end <= pos) continue;
        if (span_start > pos) {
            st = bn_tokenizer_encode(tok, text->text + pos, span_start - pos, false, true, out, err);
            if (st != BN_OK) return st;
            pos = span_start;
        }
        if (span_end > pos) {
            st = bn_tokenizer_encode(tok, text->text + pos, span_end - pos, false, false, out, err);
            if (st != BN_OK) return st;
            pos = span_end;
        }
    }
    return BN_OK;
}
