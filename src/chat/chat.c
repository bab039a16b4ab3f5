/*
 * chat.c: the table of built-in chat formats, the choice of one for a model, and rendering (see
 * chat.h and docs/CHAT_FORMATS.md). Rendering measures the whole text first (with overflow checks), then
 * writes it into one allocation.
 */
#include "chat/chat.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const eot_stops[] = {"<|eot_id|>", NULL};
static const char *const im_end_stops[] = {"<|im_end|>", NULL};
static const char *const falcon3_stops[] = {"<|user|>", NULL};
static const char *const plain_stops[] = {"\nUser:", NULL};
static const char *const no_stops[] = {NULL};

static const bn_chat_format formats[] = {
    {
        .name = "bitnet",
        .description = "BitNet b1.58 2B-4T: <|begin_of_text|>System: ...<|eot_id|>User: ...<|eot_id|>Assistant: ",
        .renders_bos = true,
        .trims_content = false,
        .stop_strings = eot_stops,
        .bos_text = "<|begin_of_text|>",
        .role_prefix = {"System: ", "User: ", "Assistant: ", "Tool: "},
        .role_suffix = "<|eot_id|>",
        .generation_prompt = "Assistant: ",
    },
    {
        .name = "llama3",
        .description = "LLaMA-3 headers: <|start_header_id|>role<|end_header_id|>\\n\\n...<|eot_id|>",
        .renders_bos = true,
        .trims_content = true,
        .stop_strings = eot_stops,
        .bos_text = "<|begin_of_text|>",
        .role_prefix = {"<|start_header_id|>system<|end_header_id|>\n\n",
                        "<|start_header_id|>user<|end_header_id|>\n\n",
                        "<|start_header_id|>assistant<|end_header_id|>\n\n",
                        "<|start_header_id|>ipython<|end_header_id|>\n\n"},
        .role_suffix = "<|eot_id|>",
        .generation_prompt = "<|start_header_id|>assistant<|end_header_id|>\n\n",
    },
    {
        .name = "chatml",
        .description = "ChatML: <|im_start|>role\\n...<|im_end|>\\n",
        .renders_bos = false,
        .trims_content = false,
        .stop_strings = im_end_stops,
        .bos_text = "",
        .role_prefix = {"<|im_start|>system\n", "<|im_start|>user\n", "<|im_start|>assistant\n",
                        "<|im_start|>tool\n"},
        .role_suffix = "<|im_end|>\n",
        .generation_prompt = "<|im_start|>assistant\n",
    },
    {
        /* llama.cpp's built-in falcon3: "<|" role "|>\n" content "\n" for every role */
        .name = "falcon3",
        .description = "Falcon3 Instruct: <|role|>\\n...\\n, ending with <|assistant|>\\n",
        .renders_bos = false,
        .trims_content = false,
        .stop_strings = falcon3_stops,
        .bos_text = "",
        .role_prefix = {"<|system|>\n", "<|user|>\n", "<|assistant|>\n", "<|tool|>\n"},
        .role_suffix = "\n",
        .generation_prompt = "<|assistant|>\n",
    },
    {
        .name = "plain",
        .description = "plain text dialogue: Role: ...\\n\\n, ending with \"Assistant:\"",
        .renders_bos = false,
        .trims_content = false,
        .stop_strings = plain_stops,
        .bos_text = "",
        .role_prefix = {"System: ", "User: ", "Assistant: ", "Tool: "},
        .role_suffix = "\n\n",
        .generation_prompt = "Assistant:",
    },
    {
        .name = "none",
        .description = "no chat template: the messages' text joined as it is (plain completion)",
        .renders_bos = false,
        .trims_content = false,
        .stop_strings = no_stops,
        .bos_text = "",
        .role_prefix = {"", "", "", ""},
        .role_suffix = "",
        .generation_prompt = "",
    },
};

enum { N_FORMATS = sizeof formats / sizeof formats[0] };
enum { FORMAT_BITNET, FORMAT_LLAMA3, FORMAT_CHATML, FORMAT_FALCON3, FORMAT_PLAIN, FORMAT_NONE };

static const char *const role_names[4] = {"system", "user", "assistant", "tool"};

size_t bn_chat_format_count(void) { return N_FORMATS; }

const bn_chat_format *bn_chat_format_at(size_t i) { return i < N_FORMATS ? &formats[i] : NULL; }

const bn_chat_format *bn_chat_format_find(const char *name, bn_error *err) {
    if (!name) {
        bn_error_set(err, BN_ERR_INVALID, "chat format: no name given");
        return NULL;
    }
    for (size_t i = 0; i < N_FORMATS; i++)
        if (!strcmp(name, formats[i].name)) return &formats[i];
    if (!strcmp(name, "llama-3") || !strcmp(name, "llama-3.1")) return &formats[FORMAT_LLAMA3];
    if (!strcmp(name, "falcon-3")) return &formats[FORMAT_FALCON3];
    bn_error_set(err, BN_ERR_INVALID,
                 "unknown chat format \"%.64s\" (known: bitnet, llama3, chatml, falcon3, plain, none)", name);
    return NULL;
}

static bool has(const char *text, const char *marker) { return strstr(text, marker) != NULL; }

const bn_chat_format *bn_chat_format_from_template(const char *t) {
    if (!t) return NULL;
    /* BITNET first: the BitNet template also uses LLaMA-3 token texts such as <|eot_id|> */
    if (has(t, "BITNET")) return &formats[FORMAT_BITNET];
    if (has(t, "<|start_header_id|>")) return &formats[FORMAT_LLAMA3];
    /* the 2B-4T checkpoint's tokenizer_config.json ("Role: content<|eot_id|>", then "Assistant: "):
     * after llama3, whose headers carry the same <|eot_id|> */
    if (has(t, "Assistant: ") && has(t, "<|eot_id|>")) return &formats[FORMAT_BITNET];
    if (has(t, "<|im_start|>")) return &formats[FORMAT_CHATML];
    /* llama.cpp tries Mistral/LLaMA-2 ([INST]), Phi-3 (<|assistant|> with <|end|>) and ChatGLM-4
     * before Falcon3, and gives a <|user|>/<|assistant|> template without </s> to GLMEdge */
    bool earlier = !strncmp(t, "mistral", 7) || has(t, "[INST]") || (has(t, "<|assistant|>") && has(t, "<|end|>")) ||
                   has(t, "[gMASK]<sop>");
    if (!earlier && has(t, "<|assistant|>") && has(t, "<|user|>") && has(t, "</s>")) return &formats[FORMAT_FALCON3];
    return NULL;
}

/* True when needle (lower case ASCII) occurs in text, in any case. */
static bool contains_nocase(const char *text, const char *needle) {
    if (!text) return false;
    size_t n = strlen(needle);
    for (const char *p = text; *p; p++) {
        size_t i = 0;
        while (i < n && p[i] && tolower((unsigned char)p[i]) == needle[i]) i++;
        if (i == n) return true;
    }
    return false;
}

/* The family's format named by an Instruct model's name, NULL when none is known. */
static const bn_chat_format *instruct_family(const bn_chat_model_info *m) {
    if (m->architecture && !strncmp(m->architecture, "bitnet", 6)) return &formats[FORMAT_BITNET];
    const char *names[] = {m->name, m->basename, m->finetune};
    static const struct {
        const char *spelling;
        int format;
    } families[] = {{"falcon3", FORMAT_FALCON3}, {"falcon-3", FORMAT_FALCON3}, {"falcon 3", FORMAT_FALCON3},
                    {"llama3", FORMAT_LLAMA3},   {"llama-3", FORMAT_LLAMA3},   {"llama 3", FORMAT_LLAMA3}};
    for (size_t k = 0; k < sizeof families / sizeof families[0]; k++)
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (contains_nocase(names[i], families[k].spelling)) return &formats[families[k].format];
    if (m->pre_tokenizer && !strcmp(m->pre_tokenizer, "falcon3")) return &formats[FORMAT_FALCON3];
    return NULL;
}

bn_chat_choice bn_chat_format_choose(const bn_chat_model_info *m) {
    static const bn_chat_model_info nothing = {0};
    if (!m) m = &nothing;
    const bn_chat_format *f = bn_chat_format_from_template(m->chat_template);
    if (f) return (bn_chat_choice){f, BN_CHAT_FROM_TEMPLATE, NULL};
    const bool has_template = m->chat_template && m->chat_template[0];
    const bool instruct = contains_nocase(m->name, "instruct") || contains_nocase(m->finetune, "instruct") ||
                          contains_nocase(m->basename, "instruct");
    if (instruct && (f = instruct_family(m)))
        return (bn_chat_choice){f, BN_CHAT_FROM_INSTRUCT,
                                has_template ? "the file's chat template is not one bitnet-c knows; the model is "
                                               "an Instruct model of a known family: its format is used"
                                             : "no chat template in the file; the model is an Instruct model of a "
                                               "known family: its format is used"};
    const char *why = has_template ? "the file's chat template is not one bitnet-c knows: plain completion "
                                     "(--chat-format NAME chooses a format)"
                      : instruct   ? "no chat template in the file and no known Instruct family: plain "
                                     "completion (--chat-format NAME chooses a format)"
                                   : "no chat template in the file: plain completion (--chat-format NAME "
                                     "chooses a format)";
    return (bn_chat_choice){&formats[FORMAT_NONE], BN_CHAT_NO_TEMPLATE, why};
}

bn_status bn_chat_role_parse(bn_chat_role *out, const char *name, bn_error *err) {
    if (name)
        for (int r = 0; r < 4; r++)
            if (!strcmp(name, role_names[r])) {
                *out = (bn_chat_role)r;
                return BN_OK;
            }
    return bn_error_set(err, BN_ERR_INVALID,
                        "unknown chat role \"%.64s\" (known: system, user, assistant, tool)",
                        name ? name : "(null)");
}

static bool is_trim_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* The part of a message's content that is rendered. */
static bn_chat_span content_range(const bn_chat_format *f, const char *content) {
    bn_chat_span r = {0, content ? strlen(content) : 0};
    if (f->trims_content) {
        while (r.len > 0 && is_trim_space(content[r.offset])) {
            r.offset++;
            r.len--;
        }
        while (r.len > 0 && is_trim_space(content[r.offset + r.len - 1])) r.len--;
    }
    return r;
}

/* total += add, false on overflow. */
static bool add_size(size_t *total, size_t add) {
    if (add > SIZE_MAX - *total) return false;
    *total += add;
    return true;
}

static char *append(char *dst, const char *src, size_t len) {
    memcpy(dst, src, len);
    return dst + len;
}

bn_status bn_chat_render(bn_chat_text *out, const bn_chat_format *format,
                         const bn_chat_message *messages, size_t n_messages,
                         bool add_generation_prompt, bn_error *err) {
    if (!out) return bn_error_set(err, BN_ERR_INVALID, "chat render: NULL output");
    memset(out, 0, sizeof *out);
    if (!format || (n_messages > 0 && !messages))
        return bn_error_set(err, BN_ERR_INVALID, "chat render: NULL format or messages");

    /* measure, validating roles */
    size_t suffix_len = strlen(format->role_suffix);
    size_t total = strlen(format->bos_text);
    for (size_t i = 0; i < n_messages; i++) {
        bn_chat_role role;
        if (bn_chat_role_parse(&role, messages[i].role, err) != BN_OK)
            return bn_error_prefix(err, "chat render: message %zu: ", i);
        bn_chat_span c = content_range(format, messages[i].content);
        if (!add_size(&total, strlen(format->role_prefix[role])) || !add_size(&total, c.len) ||
            !add_size(&total, suffix_len))
            return bn_error_set(err, BN_ERR_NOMEM, "chat render: text size overflows at message %zu", i);
    }
    if (add_generation_prompt && !add_size(&total, strlen(format->generation_prompt)))
        return bn_error_set(err, BN_ERR_NOMEM, "chat render: text size overflows");
    if (total == SIZE_MAX || n_messages > SIZE_MAX / sizeof(bn_chat_span))
        return bn_error_set(err, BN_ERR_NOMEM, "chat render: text size overflows");

    char *text = malloc(total + 1);
    bn_chat_span *spans = n_messages ? malloc(n_messages * sizeof *spans) : NULL;
    if (!text || (n_messages && !spans)) {
        free(text);
        free(spans);
        return bn_error_set(err, BN_ERR_NOMEM, "chat render: out of memory for %zu bytes", total);
    }

    /* write */
    char *p = append(text, format->bos_text, strlen(format->bos_text));
    for (size_t i = 0; i < n_messages; i++) {
        bn_chat_role role;
        bn_chat_role_parse(&role, messages[i].role, NULL); /* validated above */
        const char *prefix = format->role_prefix[role];
        bn_chat_span c = content_range(format, messages[i].content);
        p = append(p, prefix, strlen(prefix));
        spans[i].offset = (size_t)(p - text);
        spans[i].len = c.len;
        if (c.len) p = append(p, messages[i].content + c.offset, c.len);
        p = append(p, format->role_suffix, suffix_len);
    }
    if (add_generation_prompt) p = append(p, format->generation_prompt, strlen(format->generation_prompt));
    *p = '\0';

    out->text = text;
    out->len = (size_t)(p - text);
    out->content = spans;
    out->n_content = n_messages;
    return BN_OK;
}

void bn_chat_text_free(bn_chat_text *text) {
    if (!text) return;
    free(text->text);
    free(text->content);
    memset(text, 0, sizeof *text);
}
