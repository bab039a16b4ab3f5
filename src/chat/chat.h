/*
 * chat.h: built-in chat formats, turning a list of messages into the prompt text a model was
 * trained on.
 *
 * Design: a format is one row of a table (name, the text around each role's message, the
 * generation prompt, the strings that end the assistant's turn), not a Jinja interpreter. The
 * model's `tokenizer.chat_template` only selects the row, by markers it carries (BITNET,
 * <|start_header_id|>, <|im_start|>); `--chat-format NAME` overrides that choice. The formats
 * and their exact renderings are documented in docs/CHAT_FORMATS.md.
 *
 * Rendering also records which byte ranges of the text came from message content, so a caller can
 * tokenize the format's own text with special tokens recognised and the content without (a user
 * who types "<|eot_id|>" must not end their turn).
 */
#ifndef BN_CHAT_H
#define BN_CHAT_H

#include "bitnet.h"
#include "tokenizer/tokenizer.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct bn_chat_format {
    const char *name;        /* "bitnet", "llama3", "chatml", "plain" */
    const char *description; /* one line for --help */
    /* The rendering begins with the BOS token's text (<|begin_of_text|>): tokenize it with
     * specials and do not add BOS again. When false the caller adds BOS as the tokenizer says. */
    bool renders_bos;
    bool trims_content;      /* leading/trailing ASCII whitespace of each content is dropped */
    /* Texts that end the assistant's turn, NULL-terminated: use them as stop strings in addition
     * to the tokenizer's EOS/EOT tokens. */
    const char *const *stop_strings;
    /* private to chat.c: the pieces of text around each message */
    const char *bos_text;
    const char *role_prefix[4];   /* per bn_chat_role: text before the content */
    const char *role_suffix;      /* text after every message's content */
    const char *generation_prompt;
} bn_chat_format;

typedef enum bn_chat_role {
    BN_CHAT_SYSTEM = 0,
    BN_CHAT_USER = 1,
    BN_CHAT_ASSISTANT = 2,
    BN_CHAT_TOOL = 3
} bn_chat_role;

typedef struct bn_chat_message {
    const char *role;    /* "system", "user", "assistant" or "tool" (exact, lower case) */
    const char *content; /* NUL-terminated UTF-8; NULL renders as empty */
} bn_chat_message;

/* A byte range of the rendered text. */
typedef struct bn_chat_span {
    size_t offset;
    size_t len;
} bn_chat_span;

typedef struct bn_chat_text {
    char *text;              /* NUL-terminated; owned, freed by bn_chat_text_free */
    size_t len;
    bn_chat_span *content;   /* ranges that are message content, in order; owned */
    size_t n_content;
} bn_chat_text;

/* The built-in formats, for listing (--help). */
size_t bn_chat_format_count(void);
const bn_chat_format *bn_chat_format_at(size_t i);

/* By name (case-sensitive; "llama-3" and "llama-3.1" are accepted for "llama3"). NULL with
 * BN_ERR_INVALID in err, listing the valid names, when unknown. */
const bn_chat_format *bn_chat_format_find(const char *name, bn_error *err);

/* Chooses a format from the model's tokenizer.chat_template (may be NULL) by its markers: BITNET
 * -> bitnet, <|start_header_id|> -> llama3, <|im_start|> -> chatml. When the template is absent or
 * has no marker, an architecture starting with "bitnet" (may be NULL) gives bitnet, anything else
 * plain. *recognized (may be NULL) tells whether the template itself decided. Never NULL. */
const bn_chat_format *bn_chat_format_detect(const char *chat_template, const char *architecture,
                                            bool *recognized);

/* The role for a name; BN_ERR_INVALID naming it when it is not one of the four. */
bn_status bn_chat_role_parse(bn_chat_role *out, const char *name, bn_error *err);

/* Renders messages[0..n) in `format`; with add_generation_prompt the text ends with what makes the
 * model answer as the assistant. On success the caller owns *out (bn_chat_text_free). Fails with
 * BN_ERR_INVALID naming the message index for an unknown role, BN_ERR_NOMEM on allocation; *out is
 * then zeroed. */
bn_status bn_chat_render(bn_chat_text *out, const bn_chat_format *format,
                         const bn_chat_message *messages, size_t n_messages,
                         bool add_generation_prompt, bn_error *err);
void bn_chat_text_free(bn_chat_text *text);

/* Tokenizes rendered chat text from byte `from` on, appending to *out (chat_tokenize.c): the
 * format's own text with special tokens recognised, message content (the spans) as plain text, so a
 * user who types "<|eot_id|>" cannot end a turn. `from` must not fall inside a content span. With
 * add_bos the tokenizer's BOS is prepended when the tokenizer asks for one and the format does not
 * render it. */
bn_status bn_chat_tokenize(bn_tokens *out, const bn_tokenizer *tok, const bn_chat_format *format,
                           const bn_chat_text *text, size_t from, bool add_bos, bn_error *err);

#endif /* BN_CHAT_H */
