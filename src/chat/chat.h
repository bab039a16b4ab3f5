/*
 * chat.h: built-in chat formats, turning a list of messages into the prompt text a model was
 * trained on.
 *
 * Design: a format is one row of a table (name, the text around each role's message, the
 * generation prompt, the strings that end the assistant's turn), not a Jinja interpreter. The
 * model's `tokenizer.chat_template` only selects the row, by markers it carries (BITNET,
 * <|start_header_id|>, <|im_start|>, Falcon3's <|user|>/<|assistant|>/</s>); without a known
 * template, an Instruct model of a known family gets its family's row and any other model the
 * row "none" (plain completion: the messages' text and nothing around it). `--chat-format NAME`
 * overrides that choice. The formats, the choice and the exact renderings are documented in
 * docs/CHAT_FORMATS.md.
 *
 * Rendering also records which byte ranges of the text came from message content, so a caller can
 * tokenize the format's own text with special tokens recognised and the content without (a user
 * who types "<|eot_id|>" must not end their turn).
 */
#ifndef BN_CHAT_H
#define BN_CHAT_H

#include "bitnet.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct bn_chat_format {
    const char *name;        /* "bitnet", "llama3", "chatml", "falcon3", "plain", "none" */
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

/* By name (case-sensitive; "llama-3" and "llama-3.1" are accepted for "llama3", "falcon-3" for
 * "falcon3"). NULL with BN_ERR_INVALID in err, listing the valid names, when unknown. */
const bn_chat_format *bn_chat_format_find(const char *name, bn_error *err);

/* The format a chat template's text selects by the markers it carries, NULL when it has none of
 * them (or chat_template is NULL). In this order: BITNET -> bitnet; <|start_header_id|> ->
 * llama3; "Assistant: " with <|eot_id|> (the 2B-4T checkpoint's own template) -> bitnet;
 * <|im_start|> -> chatml; <|user|> with <|assistant|> and </s> -> falcon3 (llama.cpp's
 * rule, which first leaves out templates with [INST], Phi-3's <|end|> or ChatGLM's [gMASK]<sop>). */
const bn_chat_format *bn_chat_format_from_template(const char *chat_template);

/* What a model file says that decides its chat format; every field may be NULL. */
typedef struct bn_chat_model_info {
    const char *chat_template; /* tokenizer.chat_template */
    const char *architecture;  /* general.architecture */
    const char *name;          /* general.name */
    const char *finetune;      /* general.finetune */
    const char *basename;      /* general.basename */
    const char *pre_tokenizer; /* tokenizer.ggml.pre */
} bn_chat_model_info;

/* How a format was chosen. */
typedef enum bn_chat_source {
    BN_CHAT_FROM_TEMPLATE = 0, /* the file's chat template carries a known marker */
    BN_CHAT_FROM_INSTRUCT,     /* no known template; an Instruct model of a known family */
    BN_CHAT_NO_TEMPLATE        /* "none": plain completion */
} bn_chat_source;

typedef struct bn_chat_choice {
    const bn_chat_format *format; /* never NULL */
    bn_chat_source source;
    const char *note;             /* static text to show the user once; NULL when the template decided */
} bn_chat_choice;

/* The format for a model: the one its template selects (bn_chat_format_from_template); else,
 * for an Instruct model (general.name, finetune or basename contains "instruct", any case), its
 * family's: bitnet for an architecture starting with "bitnet" (the 2B-4T format), falcon3 when
 * the name says Falcon3 or the pre-tokenizer is "falcon3", llama3 when the name says Llama-3;
 * else "none" (plain completion), with a note saying why. */
bn_chat_choice bn_chat_format_choose(const bn_chat_model_info *info);

/* bn_chat_format_choose with the info read from a model file's metadata (chat_detect.c).
 * BN_ERR_NOMEM only. */
bn_status bn_chat_format_for_gguf(bn_chat_choice *out, const bn_gguf *gguf, bn_error *err);

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
