/*
 * test_chat.c: every built-in chat format against hand-written renderings (all four roles, with
 * and without the generation prompt; falcon3 against llama.cpp's built-in rendering of its own
 * test conversation), content spans, the prefix property the chat command's KV cache reuse
 * relies on, detection from template text, the choice for files without a known template
 * (Instruct families, plain completion), lookup by name, and role/format errors.
 */
#include "chat/chat.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>

static const bn_chat_message conversation[5] = {
    {"system", "You are helpful."},
    {"user", "Hi"},
    {"assistant", "Hello!"},
    {"tool", "{\"temp\": 21}"},
    {"user", "Thanks"},
};

static void check_render(const char *format_name, const bn_chat_message *msgs, size_t n, bool gen,
                         const char *expected) {
    bn_error err;
    const bn_chat_format *f = bn_chat_format_find(format_name, &err);
    CHECKF(f != NULL, "format %s: %s", format_name, err.message);
    if (!f) return;
    bn_chat_text out;
    bn_status st = bn_chat_render(&out, f, msgs, n, gen, &err);
    CHECK_OK(st, &err);
    if (st != BN_OK) return;
    CHECKF(!strcmp(out.text, expected), "%s:\n got      \"%s\"\n expected \"%s\"", format_name, out.text,
           expected);
    CHECK(out.len == strlen(out.text));
    bn_chat_text_free(&out);
    CHECK(out.text == NULL && out.content == NULL);
}

static void test_bitnet(void) {
    check_render("bitnet", conversation, 5, true,
                 "<|begin_of_text|>System: You are helpful.<|eot_id|>User: Hi<|eot_id|>"
                 "Assistant: Hello!<|eot_id|>Tool: {\"temp\": 21}<|eot_id|>User: Thanks<|eot_id|>"
                 "Assistant: ");
    check_render("bitnet", conversation, 3, false,
                 "<|begin_of_text|>System: You are helpful.<|eot_id|>User: Hi<|eot_id|>"
                 "Assistant: Hello!<|eot_id|>");
    check_render("bitnet", conversation + 1, 1, true, "<|begin_of_text|>User: Hi<|eot_id|>Assistant: ");
    check_render("bitnet", NULL, 0, true, "<|begin_of_text|>Assistant: ");
    check_render("bitnet", NULL, 0, false, "<|begin_of_text|>");
    /* content is not trimmed */
    const bn_chat_message spaced[1] = {{"user", "  two spaces \n"}};
    check_render("bitnet", spaced, 1, true, "<|begin_of_text|>User:   two spaces \n<|eot_id|>Assistant: ");
}

static void test_llama3(void) {
    check_render("llama3", conversation, 5, true,
                 "<|begin_of_text|>"
                 "<|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>"
                 "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                 "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
                 "<|start_header_id|>ipython<|end_header_id|>\n\n{\"temp\": 21}<|eot_id|>"
                 "<|start_header_id|>user<|end_header_id|>\n\nThanks<|eot_id|>"
                 "<|start_header_id|>assistant<|end_header_id|>\n\n");
    check_render("llama3", conversation + 1, 2, false,
                 "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                 "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>");
    /* Meta's template trims each content */
    const bn_chat_message spaced[2] = {{"user", " \t Hi there\n\n"}, {"assistant", "   "}};
    check_render("llama3", spaced, 2, false,
                 "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
                 "<|start_header_id|>assistant<|end_header_id|>\n\n<|eot_id|>");
    check_render("llama-3", conversation + 4, 1, true,
                 "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nThanks<|eot_id|>"
                 "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

static void test_chatml(void) {
    check_render("chatml", conversation, 5, true,
                 "<|im_start|>system\nYou are helpful.<|im_end|>\n"
                 "<|im_start|>user\nHi<|im_end|>\n"
                 "<|im_start|>assistant\nHello!<|im_end|>\n"
                 "<|im_start|>tool\n{\"temp\": 21}<|im_end|>\n"
                 "<|im_start|>user\nThanks<|im_end|>\n"
                 "<|im_start|>assistant\n");
    check_render("chatml", conversation + 1, 1, false, "<|im_start|>user\nHi<|im_end|>\n");
    check_render("chatml", NULL, 0, true, "<|im_start|>assistant\n");
}

/* llama.cpp's test conversation (tests/test-chat-template.cpp) and what its built-in falcon3
 * template (src/llama-chat.cpp, LLM_CHAT_TEMPLATE_FALCON_3) renders for it: "<|" role "|>\n",
 * the content untouched, "\n"; the generation prompt "<|assistant|>\n". */
static const bn_chat_message llama_cpp_conversation[6] = {
    {"system", "You are a helpful assistant"}, {"user", "Hello"}, {"assistant", "Hi there"},
    {"user", "Who are you"}, {"assistant", "   I am an assistant   "}, {"user", "Another question"},
};
static const char falcon3_reference[] =
    "<|system|>\nYou are a helpful assistant\n<|user|>\nHello\n<|assistant|>\nHi there\n<|user|>\nWho are you\n"
    "<|assistant|>\n   I am an assistant   \n<|user|>\nAnother question\n<|assistant|>\n";

static void test_falcon3(void) {
    check_render("falcon3", llama_cpp_conversation, 6, true, falcon3_reference);
    check_render("falcon3", conversation, 5, false,
                 "<|system|>\nYou are helpful.\n<|user|>\nHi\n<|assistant|>\nHello!\n<|tool|>\n{\"temp\": 21}\n"
                 "<|user|>\nThanks\n");
    check_render("falcon3", NULL, 0, true, "<|assistant|>\n");
    check_render("falcon-3", conversation + 1, 1, true, "<|user|>\nHi\n<|assistant|>\n");
}

static void test_none(void) {
    check_render("none", llama_cpp_conversation, 6, true,
                 "You are a helpful assistantHelloHi thereWho are you   I am an assistant   Another question");
    check_render("none", conversation + 1, 1, true, "Hi");
    check_render("none", NULL, 0, true, "");
}

static void test_plain(void) {
    check_render("plain", conversation, 5, true,
                 "System: You are helpful.\n\nUser: Hi\n\nAssistant: Hello!\n\nTool: {\"temp\": 21}\n\n"
                 "User: Thanks\n\nAssistant:");
    check_render("plain", conversation + 1, 2, false, "User: Hi\n\nAssistant: Hello!\n\n");
    const bn_chat_message null_content[1] = {{"assistant", NULL}};
    check_render("plain", null_content, 1, false, "Assistant: \n\n");
}

static void test_flags_and_spans(void) {
    bn_error err;
    const bn_chat_format *bitnet = bn_chat_format_find("bitnet", &err);
    const bn_chat_format *llama3 = bn_chat_format_find("llama3", &err);
    const bn_chat_format *chatml = bn_chat_format_find("chatml", &err);
    const bn_chat_format *plain = bn_chat_format_find("plain", &err);
    const bn_chat_format *falcon3 = bn_chat_format_find("falcon3", &err);
    const bn_chat_format *none = bn_chat_format_find("none", &err);
    if (!bitnet || !llama3 || !chatml || !plain || !falcon3 || !none) {
        CHECK(false);
        return;
    }
    CHECK(bitnet->renders_bos && llama3->renders_bos && !chatml->renders_bos && !plain->renders_bos);
    CHECK(!falcon3->renders_bos && !falcon3->trims_content && !none->renders_bos && !none->trims_content);
    CHECK(!strcmp(bitnet->stop_strings[0], "<|eot_id|>") && bitnet->stop_strings[1] == NULL);
    CHECK(!strcmp(chatml->stop_strings[0], "<|im_end|>"));
    CHECK(!strcmp(plain->stop_strings[0], "\nUser:"));
    CHECK(!strcmp(falcon3->stop_strings[0], "<|user|>") && falcon3->stop_strings[1] == NULL);
    CHECK(none->stop_strings && none->stop_strings[0] == NULL);
    CHECK(bn_chat_format_count() == 6);
    for (size_t i = 0; i < bn_chat_format_count(); i++) {
        const bn_chat_format *f = bn_chat_format_at(i);
        CHECK(f && f->name && f->description && bn_chat_format_find(f->name, NULL) == f);
    }
    CHECK(bn_chat_format_at(6) == NULL);

    /* spans cover exactly each message's rendered content, and a user typing a special token's
     * text is content (the caller tokenizes it without specials) */
    const bn_chat_message msgs[3] = {{"system", "S"}, {"user", "  I typed <|eot_id|> "}, {"assistant", ""}};
    for (size_t k = 0; k < bn_chat_format_count(); k++) {
        const bn_chat_format *f = bn_chat_format_at(k);
        bn_chat_text out;
        CHECK_OK(bn_chat_render(&out, f, msgs, 3, true, &err), &err);
        CHECK(out.n_content == 3);
        CHECK(out.content[0].len == 1 && out.text[out.content[0].offset] == 'S');
        const char *want = f->trims_content ? "I typed <|eot_id|>" : "  I typed <|eot_id|> ";
        CHECKF(out.content[1].len == strlen(want) &&
                   !memcmp(out.text + out.content[1].offset, want, strlen(want)),
               "%s: span 1 wrong", f->name);
        CHECK(out.content[2].len == 0 && out.content[1].offset < out.content[2].offset &&
              out.content[2].offset <= out.len);
        bn_chat_text_free(&out);
    }
}

/* A conversation rendered up to the generation prompt is a prefix of the same conversation with
 * the answer added: the chat command keeps the first in its KV cache and appends the rest. */
static void test_prefix_property(void) {
    bn_error err;
    const bn_chat_message turns[4] = {
        {"system", "Be brief."}, {"user", "2+2?"}, {"assistant", "4"}, {"user", "and 3+3?"}};
    for (size_t k = 0; k < bn_chat_format_count(); k++) {
        const bn_chat_format *f = bn_chat_format_at(k);
        bn_chat_text asked, answered, next;
        CHECK_OK(bn_chat_render(&asked, f, turns, 2, true, &err), &err);
        CHECK_OK(bn_chat_render(&answered, f, turns, 3, false, &err), &err);
        CHECK_OK(bn_chat_render(&next, f, turns, 4, true, &err), &err);
        CHECKF(asked.len <= answered.len && !memcmp(asked.text, answered.text, asked.len),
               "%s: generation prompt is not a prefix of the answered turn", f->name);
        CHECKF(answered.len <= next.len && !memcmp(answered.text, next.text, answered.len),
               "%s: turn 2 does not extend turn 1", f->name);
        bn_chat_text_free(&asked);
        bn_chat_text_free(&answered);
        bn_chat_text_free(&next);
    }
}

static void test_errors(void) {
    bn_error err;
    bn_chat_text out;
    const bn_chat_format *f = bn_chat_format_find("bitnet", &err);
    const bn_chat_message bad[2] = {{"user", "hi"}, {"bot", "hello"}};
    CHECK(bn_chat_render(&out, f, bad, 2, true, &err) == BN_ERR_INVALID);
    CHECK_STR_CONTAINS(err.message, "message 1");
    CHECK_STR_CONTAINS(err.message, "\"bot\"");
    CHECK(out.text == NULL && out.len == 0);
    const bn_chat_message upper[1] = {{"User", "hi"}};
    CHECK(bn_chat_render(&out, f, upper, 1, true, &err) == BN_ERR_INVALID);
    const bn_chat_message null_role[1] = {{NULL, "hi"}};
    CHECK(bn_chat_render(&out, f, null_role, 1, true, &err) == BN_ERR_INVALID);
    CHECK(bn_chat_render(&out, NULL, bad, 1, true, &err) == BN_ERR_INVALID);
    CHECK(bn_chat_render(&out, f, NULL, 1, true, &err) == BN_ERR_INVALID);

    CHECK(bn_chat_format_find("vicuna", &err) == NULL && err.code == BN_ERR_INVALID);
    CHECK_STR_CONTAINS(err.message, "vicuna");
    CHECK_STR_CONTAINS(err.message, "chatml");
    CHECK(bn_chat_format_find("", &err) == NULL);
    CHECK(bn_chat_format_find("BITNET", &err) == NULL); /* names are case-sensitive */
    CHECK(bn_chat_format_find(NULL, &err) == NULL);

    bn_chat_role role;
    CHECK(bn_chat_role_parse(&role, "tool", &err) == BN_OK && role == BN_CHAT_TOOL);
    CHECK(bn_chat_role_parse(&role, "system", &err) == BN_OK && role == BN_CHAT_SYSTEM);
    CHECK(bn_chat_role_parse(&role, "function", &err) == BN_ERR_INVALID);
}

/* The name of the format a template selects ("" for none). */
static const char *from_template(const char *t) {
    const bn_chat_format *f = bn_chat_format_from_template(t);
    return f ? f->name : "";
}

/* The Falcon3-Instruct template's layout (one role per line, eos_token after assistant turns),
 * and the variant with the literal </s> that llama.cpp's built-in detection keys on. */
#define FALCON3_BODY(EOS)                                                                                      \
    "{% for message in messages %}{% if message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + " \
    "'\n' }}{% elif message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + '\n' }}{% elif "        \
    "message['role'] == 'assistant' %}{{ '<|assistant|>\n' + message['content'] + " EOS " + '\n' }}{% endif %}" \
    "{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}{% endfor %}"

static void test_detect(void) {
    /* the template embedded in Microsoft's 2B-4T GGUF (Human:/BITNETAssistant:) */
    const char *bitnet_tpl =
        "{% for message in messages %}{% if loop.first %}{{ bos_token }}{% endif %}"
        "{% if message['role'] == 'user' %}{{ 'Human: ' + message['content'] + '\\n\\nBITNETAssistant: ' + "
        "eos_token }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% endif %}"
        "{% endfor %}";
    const char *llama3_tpl =
        "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
        "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
        "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
        "{{ content }}{% endfor %}{% if add_generation_prompt %}"
        "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
    const char *chatml_tpl =
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
        "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
        "{% endif %}";
    const char *other_tpl = "{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}";
    CHECK(!strcmp(from_template(bitnet_tpl), "bitnet"));
    CHECK(!strcmp(from_template(llama3_tpl), "llama3"));
    CHECK(!strcmp(from_template(chatml_tpl), "chatml"));
    CHECK(!strcmp(from_template(FALCON3_BODY("'</s>'")), "falcon3"));
    CHECK(!strcmp(from_template(other_tpl), ""));
    CHECK(!strcmp(from_template(""), "") && bn_chat_format_from_template(NULL) == NULL);
    /* a template that names BITNET and also uses LLaMA-3 headers is still bitnet */
    CHECK(!strcmp(from_template("<|start_header_id|> BITNET"), "bitnet"));
    /* the template of the 2B-4T checkpoint's tokenizer_config.json (HF_CHECKPOINTS.md 3.5): no
     * BITNET marker, but "Assistant: " with <|eot_id|>; LLaMA-3's <|eot_id|> alone stays llama3 */
    const char *hf_2b4t_tpl =
        "{% for message in messages %}{{ message['role'] | capitalize + ': ' + message['content'] | trim + "
        "'<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}";
    CHECK(!strcmp(from_template(hf_2b4t_tpl), "bitnet"));
    CHECK(!strcmp(from_template(llama3_tpl), "llama3"));
    CHECK(!strcmp(from_template("{{ m['content'] + '<|eot_id|>' }}"), ""));
    CHECK(!strcmp(from_template("{{ 'Assistant: ' + m['content'] }}"), ""));
    /* llama.cpp's falcon3 rule: <|user|>, <|assistant|> and </s>; without </s> it is GLMEdge's,
     * with Phi-3's <|end|>, [INST] or ChatGLM-4's [gMASK]<sop> another family's */
    CHECK(!strcmp(from_template(FALCON3_BODY("eos_token")), ""));
    CHECK(!strcmp(from_template("<|user|>\n{{ m }}<|end|>\n<|assistant|>\n</s>"), ""));
    CHECK(!strcmp(from_template("[gMASK]<sop><|user|>\n<|assistant|></s>"), ""));
    CHECK(!strcmp(from_template("[INST] <|user|> <|assistant|> </s>"), ""));
    CHECK(!strcmp(from_template("<|im_start|> <|user|> <|assistant|> </s>"), "chatml"));
}

/* The choice for a whole file: template first, then the Instruct family, else plain completion. */
static void check_choice(const bn_chat_model_info *info, const char *format, bn_chat_source source,
                         const char *note_part) {
    bn_chat_choice c = bn_chat_format_choose(info);
    CHECKF(c.format && !strcmp(c.format->name, format) && c.source == source, "chose %s (source %d), expected %s (%d)",
           c.format ? c.format->name : "NULL", (int)c.source, format, (int)source);
    if (note_part) {
        CHECKF(c.note && strstr(c.note, note_part), "note \"%s\" lacks \"%s\"", c.note ? c.note : "(none)", note_part);
    } else {
        CHECKF(c.note == NULL, "unexpected note \"%s\"", c.note);
    }
}

static void test_choose(void) {
    const char *falcon3_tpl = FALCON3_BODY("'</s>'");
    /* a known template decides, whatever the name says */
    check_choice(&(bn_chat_model_info){.chat_template = falcon3_tpl, .architecture = "llama",
                                       .name = "Falcon3-1B-Base"},
                 "falcon3", BN_CHAT_FROM_TEMPLATE, NULL);
    check_choice(&(bn_chat_model_info){.chat_template = "{# BITNET #}", .architecture = "bitnet-b1.58"}, "bitnet",
                 BN_CHAT_FROM_TEMPLATE, NULL);
    /* no template, no Instruct: plain completion, whatever the architecture (the 2B-4T format is
     * not given to base models) */
    check_choice(&(bn_chat_model_info){.architecture = "bitnet-b1.58", .name = "synthetic-bitnet"}, "none",
                 BN_CHAT_NO_TEMPLATE, "no chat template in the file: plain completion");
    check_choice(&(bn_chat_model_info){.architecture = "bitnet", .name = "bitnet_b1_58-large"}, "none",
                 BN_CHAT_NO_TEMPLATE, "plain completion");
    check_choice(&(bn_chat_model_info){.architecture = "llama", .name = "Falcon3-1B-Base-1.58bit"}, "none",
                 BN_CHAT_NO_TEMPLATE, "plain completion");
    check_choice(NULL, "none", BN_CHAT_NO_TEMPLATE, "plain completion");
    /* Instruct models without a template: their family's format, from general.name, finetune,
     * basename (any case) or the falcon3 pre-tokenizer */
    check_choice(&(bn_chat_model_info){.architecture = "llama", .name = "Falcon3-1B-Instruct-1.58bit"}, "falcon3",
                 BN_CHAT_FROM_INSTRUCT, "Instruct");
    check_choice(&(bn_chat_model_info){.architecture = "llama", .basename = "Falcon3", .finetune = "instruct"},
                 "falcon3", BN_CHAT_FROM_INSTRUCT, "Instruct");
    check_choice(&(bn_chat_model_info){.architecture = "llama", .name = "My-INSTRUCT", .pre_tokenizer = "falcon3"},
                 "falcon3", BN_CHAT_FROM_INSTRUCT, "Instruct");
    check_choice(&(bn_chat_model_info){.architecture = "llama", .name = "Llama-3-8B-Instruct-1.58"}, "llama3",
                 BN_CHAT_FROM_INSTRUCT, "Instruct");
    check_choice(&(bn_chat_model_info){.architecture = "bitnet-b1.58", .name = "bitnet-b1.58-2B-4T-Instruct"},
                 "bitnet", BN_CHAT_FROM_INSTRUCT, "Instruct");
    /* the official-style Falcon3 template (eos_token, no </s>) is not recognised by itself; the
     * Instruct name still gives falcon3 */
    check_choice(&(bn_chat_model_info){.chat_template = FALCON3_BODY("eos_token"), .architecture = "llama",
                                       .name = "Falcon3-7B-Instruct"},
                 "falcon3", BN_CHAT_FROM_INSTRUCT, "not one bitnet-c knows");
    /* an Instruct model of an unknown family, and an unknown template: plain completion */
    check_choice(&(bn_chat_model_info){.architecture = "llama", .name = "Qwen-Instruct"}, "none", BN_CHAT_NO_TEMPLATE,
                 "no known Instruct family");
    check_choice(&(bn_chat_model_info){.chat_template = "{{ messages }}", .architecture = "llama"}, "none",
                 BN_CHAT_NO_TEMPLATE, "not one bitnet-c knows: plain completion");
}

int main(void) {
    test_bitnet();
    test_llama3();
    test_chatml();
    test_falcon3();
    test_none();
    test_plain();
    test_flags_and_spans();
    test_prefix_property();
    test_errors();
    test_detect();
    test_choose();
    return bn_test_finish("test_chat");
}
