/*
 * fuzz_hf_config.c: the Hugging Face JSON readers (convert/hf_config.h) on arbitrary bytes: the
 * whole input is given to bn_hf_config_parse (as config.json), bn_hf_tokenizer_config_parse and
 * bn_hf_generation_config_parse; the seeds hold documents of each kind.
 *
 * Properties beyond "no crash, no sanitizer report":
 *   - a failure fills the error (same code, a one-line message that starts with the file name
 *     and names a field or the JSON position, free of control bytes) and leaves nothing to free;
 *   - an accepted config.json satisfies every documented bound: a known architecture, sizes in
 *     [1, limit], num_key_value_heads dividing num_attention_heads, an even head_dim equal to
 *     hidden_size / heads when not given, rms_norm_eps in (0, 1), a positive finite rope_theta,
 *     rope scaling fields valid for their type, token ids below vocab_size, the weight_scale
 *     direction equal to linear_class == autobitlinear, modules_to_not_convert all strings;
 *   - an accepted tokenizer_config.json / generation_config.json is marked present, its strings
 *     readable, its ids in [0, 2^31).
 */
#include "bitnet.h"
#include "convert/hf_config.h"
#include "fuzz_input.h"

static volatile size_t g_sink;

static void check_message(bn_status st, const bn_error *err, const char *name) {
    BN_FUZZ_CHECK(err->code == st && memchr(err->message, 0, sizeof err->message), "error not filled (status %d)",
                  (int)st);
    size_t n = strlen(name);
    BN_FUZZ_CHECK(!strncmp(err->message, name, n) && err->message[n] == ':' &&
                      (strstr(err->message, "field '") || strstr(err->message, "JSON")),
                  "message names neither the file and a field nor the JSON: %s", err->message);
    for (const char *p = err->message; *p; p++)
        BN_FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f, "control byte 0x%02x in message: %s",
                      (unsigned char)*p, err->message);
}

static void check_ids(const bn_hf_token_ids *ids, int64_t limit) {
    BN_FUZZ_CHECK(ids->n <= BN_HF_MAX_TOKEN_IDS, "%u ids", ids->n);
    for (uint32_t i = 0; i < ids->n; i++)
        BN_FUZZ_CHECK(ids->ids[i] >= 0 && ids->ids[i] < limit, "id %d of limit %lld", ids->ids[i], (long long)limit);
}

static void check_config(const bn_hf_config *c) {
    BN_FUZZ_CHECK(strcmp(bn_hf_arch_name(c->arch), "invalid") != 0, "arch %d", (int)c->arch);
    BN_FUZZ_CHECK(c->hidden_size >= 1 && c->hidden_size <= BN_HF_MAX_DIM, "hidden_size %u", c->hidden_size);
    BN_FUZZ_CHECK(c->intermediate_size >= 1 && c->intermediate_size <= BN_HF_MAX_DIM, "intermediate_size");
    BN_FUZZ_CHECK(c->num_hidden_layers >= 1 && c->num_hidden_layers <= BN_HF_MAX_DIM, "num_hidden_layers");
    BN_FUZZ_CHECK(c->num_attention_heads >= 1 && c->num_attention_heads <= BN_HF_MAX_DIM, "heads");
    BN_FUZZ_CHECK(c->num_key_value_heads >= 1 && c->num_attention_heads % c->num_key_value_heads == 0, "kv heads %u of %u",
                  c->num_key_value_heads, c->num_attention_heads);
    BN_FUZZ_CHECK(c->head_dim >= 2 && c->head_dim <= BN_HF_MAX_DIM && c->head_dim % 2 == 0, "head_dim %u", c->head_dim);
    if (!c->head_dim_given)
        BN_FUZZ_CHECK((uint64_t)c->head_dim * c->num_attention_heads == c->hidden_size, "derived head_dim %u",
                      c->head_dim);
    BN_FUZZ_CHECK(c->vocab_size >= 1 && c->vocab_size <= BN_HF_MAX_VOCAB, "vocab_size %u", c->vocab_size);
    BN_FUZZ_CHECK(c->max_position_embeddings >= 1 && c->max_position_embeddings <= BN_HF_MAX_POSITIONS, "positions");
    BN_FUZZ_CHECK(c->rms_norm_eps > 0 && c->rms_norm_eps < 1, "rms_norm_eps %g", c->rms_norm_eps);
    BN_FUZZ_CHECK(c->rope_theta > 0 && isfinite(c->rope_theta), "rope_theta %g", c->rope_theta);
    const bn_hf_rope_scaling *r = &c->rope_scaling;
    if (r->type != BN_HF_ROPE_NONE) BN_FUZZ_CHECK(r->factor > 0 && isfinite(r->factor), "factor %g", r->factor);
    if (r->type == BN_HF_ROPE_LLAMA3)
        BN_FUZZ_CHECK(r->low_freq_factor > 0 && r->high_freq_factor > r->low_freq_factor &&
                          isfinite(r->high_freq_factor) && r->original_max_position_embeddings >= 1,
                      "llama3 scaling");
    BN_FUZZ_CHECK(c->hidden_act == BN_HF_ACT_SILU || c->hidden_act == BN_HF_ACT_RELU2, "hidden_act %d", (int)c->hidden_act);
    check_ids(&c->bos_token_id, c->vocab_size);
    check_ids(&c->eos_token_id, c->vocab_size);
    const bn_hf_quantization *q = &c->quantization;
    BN_FUZZ_CHECK(q->scale_multiplies == (q->present && q->autobitlinear), "scale direction");
    if (!q->present) BN_FUZZ_CHECK(q->n_modules_to_not_convert == 0 && !q->autobitlinear && !q->online, "absent quant");
    else BN_FUZZ_CHECK(q->rms_norm_eps > 0 && q->rms_norm_eps < 1, "quant eps %g", q->rms_norm_eps);
    for (uint32_t i = 0; i < q->n_modules_to_not_convert; i++) {
        BN_FUZZ_CHECK(q->modules_to_not_convert[i] != NULL, "module %u", i);
        g_sink = strlen(q->modules_to_not_convert[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    bn_error err;

    bn_hf_config c;
    bn_error_clear(&err);
    bn_status st = bn_hf_config_parse(text, size, "config.json", &c, &err);
    if (st == BN_OK) {
        check_config(&c);
        bn_hf_config_free(&c);
    } else {
        check_message(st, &err, "config.json");
        BN_FUZZ_CHECK(c.quantization.modules_to_not_convert == NULL, "failed parse kept strings");
    }

    bn_hf_tokenizer_config t;
    bn_error_clear(&err);
    st = bn_hf_tokenizer_config_parse(text, size, "tokenizer_config.json", &t, &err);
    if (st == BN_OK) {
        BN_FUZZ_CHECK(t.present, "accepted without present");
        g_sink = (t.chat_template ? strlen(t.chat_template) : 0) + (t.bos_token ? strlen(t.bos_token) : 0) +
                 (t.eos_token ? strlen(t.eos_token) : 0);
        bn_hf_tokenizer_config_free(&t);
    } else {
        check_message(st, &err, "tokenizer_config.json");
        BN_FUZZ_CHECK(!t.present && !t.chat_template && !t.bos_token && !t.eos_token, "failed parse kept strings");
    }

    bn_hf_generation_config g;
    bn_error_clear(&err);
    st = bn_hf_generation_config_parse(text, size, "generation_config.json", &g, &err);
    if (st == BN_OK) {
        BN_FUZZ_CHECK(g.present, "accepted without present");
        check_ids(&g.bos_token_id, (int64_t)INT32_MAX + 1);
        check_ids(&g.eos_token_id, (int64_t)INT32_MAX + 1);
    } else {
        check_message(st, &err, "generation_config.json");
        BN_FUZZ_CHECK(!g.present && g.eos_token_id.n == 0, "failed parse kept ids");
    }
    return 0;
}
