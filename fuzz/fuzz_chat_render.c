/*
 * fuzz_chat_render.c: rendering fuzz-chosen conversations (chat/chat.h) in every built-in format:
 * known and unknown roles (random bytes, wrong case, NULL), contents with any non-NUL bytes
 * (special-token text, whitespace to trim, invalid UTF-8) or NULL; plus format lookup by name,
 * detection from a fuzz template and the choice for fuzz metadata.
 *
 * Properties: an unknown role fails with BN_ERR_INVALID naming the message index and leaves the
 * output zeroed; otherwise the text is exactly the format's BOS text, then per message its
 * role prefix, content (trimmed when the format trims) and suffix, then the generation prompt
 * when asked; len is its length (NUL-terminated); content spans are in order, inside the text
 * and hold each message's content byte for byte. Lookup of a random name returns a format whose
 * name or alias it is, or NULL with BN_ERR_INVALID; detection returns a listed format or NULL; the
 * choice always has a format, takes the template's when there is one, and has a note exactly when
 * the template did not decide.
 */
#include "bitnet.h"
#include "chat/chat.h"
#include "fuzz_input.h"

#define MAX_MESSAGES 8

static const char *const known_roles[] = {"system", "user", "assistant", "tool"};

static bool trim_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bn_fuzz_input in = bn_fuzz_input_make(data, size);
    uint8_t flags = bn_fuzz_u8(&in);
    size_t n_formats = bn_chat_format_count();
    const bn_chat_format *f = bn_chat_format_at(flags % n_formats);
    BN_FUZZ_CHECK(f != NULL, "format %zu of %zu", (size_t)(flags % n_formats), n_formats);
    bool gen = flags & 0x80;

    size_t n = (size_t)bn_fuzz_range(&in, 0, MAX_MESSAGES);
    bn_chat_message msgs[MAX_MESSAGES];
    char role_buf[MAX_MESSAGES][32], content_buf[MAX_MESSAGES][257];
    long first_bad = -1;
    for (size_t i = 0; i < n; i++) {
        uint8_t r = bn_fuzz_u8(&in);
        if (r < 200) {
            msgs[i].role = known_roles[r % 4];
        } else if (r < 210) {
            msgs[i].role = NULL;
        } else {
            size_t len;
            const uint8_t *p = bn_fuzz_bytes(&in, (size_t)bn_fuzz_range(&in, 0, 12), &len);
            memcpy(role_buf[i], p, len);
            role_buf[i][len] = '\0';
            if (r >= 250 && len > 0) role_buf[i][0] ^= 0x20; /* "User", "aSSISTANT"-like near misses */
            msgs[i].role = role_buf[i];
        }
        bool known = false;
        for (int k = 0; k < 4 && msgs[i].role; k++) known |= !strcmp(msgs[i].role, known_roles[k]);
        if (!known && first_bad < 0) first_bad = (long)i;
        size_t len;
        const uint8_t *p = bn_fuzz_chunk(&in, &len);
        memcpy(content_buf[i], p, len);
        content_buf[i][len] = '\0';
        msgs[i].content = (r & 1) && len == 0 ? NULL : content_buf[i];
    }

    bn_error err;
    bn_chat_text out;
    bn_status st = bn_chat_render(&out, f, msgs, n, gen, &err);
    if (first_bad >= 0) {
        char want[32];
        snprintf(want, sizeof want, "message %ld", first_bad);
        BN_FUZZ_CHECK(st == BN_ERR_INVALID && strstr(err.message, want), "unknown role at %ld: status %d, \"%s\"",
                      first_bad, (int)st, err.message);
        BN_FUZZ_CHECK(out.text == NULL && out.content == NULL && out.len == 0, "failed render left output");
    } else {
        BN_FUZZ_CHECK(st == BN_OK, "render failed: %s", err.message);
        BN_FUZZ_CHECK(out.text[out.len] == '\0' && strlen(out.text) == out.len, "len %zu", out.len);
        BN_FUZZ_CHECK(out.n_content == n, "%zu spans for %zu messages", out.n_content, n);
        /* rebuild the expected text from the format's pieces */
        size_t at = 0;
#define EXPECT(s, l, what)                                                                             \
        BN_FUZZ_CHECK(at + (l) <= out.len && memcmp(out.text + at, (s), (l)) == 0, "%s at byte %zu", what, at); \
        at += (l);
        EXPECT(f->bos_text, strlen(f->bos_text), "BOS text")
        if (f->renders_bos) BN_FUZZ_CHECK(f->bos_text[0], "renders_bos without BOS text");
        for (size_t i = 0; i < n; i++) {
            bn_chat_role role;
            BN_FUZZ_CHECK(bn_chat_role_parse(&role, msgs[i].role, NULL) == BN_OK, "role");
            const char *prefix = f->role_prefix[role];
            EXPECT(prefix, strlen(prefix), "role prefix")
            const char *c = msgs[i].content ? msgs[i].content : "";
            size_t cl = strlen(c);
            if (f->trims_content) {
                while (cl > 0 && trim_space(*c)) c++, cl--;
                while (cl > 0 && trim_space(c[cl - 1])) cl--;
            }
            BN_FUZZ_CHECK(out.content[i].offset == at && out.content[i].len == cl,
                          "span %zu is [%zu, +%zu), content at %zu, %zu bytes", i, out.content[i].offset,
                          out.content[i].len, at, cl);
            EXPECT(c, cl, "content")
            EXPECT(f->role_suffix, strlen(f->role_suffix), "role suffix")
        }
        if (gen) {
            EXPECT(f->generation_prompt, strlen(f->generation_prompt), "generation prompt")
        }
#undef EXPECT
        BN_FUZZ_CHECK(at == out.len, "text has %zu extra bytes", out.len - at);
        bn_chat_text_free(&out);
    }

    /* lookup and detection on the rest of the input */
    size_t len;
    const uint8_t *p = bn_fuzz_chunk(&in, &len);
    char name[256];
    memcpy(name, p, len);
    name[len] = '\0';
    const bn_chat_format *found = bn_chat_format_find(name, &err);
    if (found) {
        bool listed = false;
        for (size_t i = 0; i < n_formats; i++) listed |= bn_chat_format_at(i) == found;
        BN_FUZZ_CHECK(listed, "find returned an unlisted format");
        BN_FUZZ_CHECK(!strcmp(found->name, name) || !strncmp(name, "llama-3", 7) || !strcmp(name, "falcon-3"),
                      "find(\"%s\") gave %s", name, found->name);
    } else {
        BN_FUZZ_CHECK(err.code == BN_ERR_INVALID, "find failed with %d", (int)err.code);
    }
    const bn_chat_format *detected = bn_chat_format_from_template(name);
    bool listed = detected == NULL;
    for (size_t i = 0; i < n_formats && detected; i++) listed |= bn_chat_format_at(i) == detected;
    BN_FUZZ_CHECK(listed, "detection returned an unlisted format");
    const bn_chat_model_info info = {.chat_template = (flags & 0x40) ? name : NULL,
                                     .architecture = (flags & 0x20) ? name : "llama",
                                     .name = (flags & 0x10) ? name : NULL,
                                     .pre_tokenizer = (flags & 0x08) ? name : NULL};
    bn_chat_choice choice = bn_chat_format_choose(&info);
    BN_FUZZ_CHECK(choice.format != NULL, "choice without a format");
    BN_FUZZ_CHECK((choice.source == BN_CHAT_FROM_TEMPLATE) == (choice.note == NULL), "note %s for source %d",
                  choice.note ? choice.note : "NULL", (int)choice.source);
    if (info.chat_template && detected)
        BN_FUZZ_CHECK(choice.format == detected && choice.source == BN_CHAT_FROM_TEMPLATE, "template ignored");
    return 0;
}
