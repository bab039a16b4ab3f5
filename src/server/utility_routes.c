/*
 * utility_routes.c: llama-server's utility routes, with its request and response shapes:
 *   POST /tokenize   {"content": text, "add_special": false, "parse_special": true,
 *                     "with_pieces": false} -> {"tokens": [ids]} or, with pieces,
 *                    {"tokens": [{"id", "piece"}]} (a piece that is not valid UTF-8 on its own, such
 *                    as half of a multi-byte character, is given as its byte values);
 *   POST /detokenize {"tokens": [ids]} -> {"content": text};
 *   GET  /props      the model, its context, hidden size (n_embd) and slots, the chat format, the
 *                    device and the build;
 *   POST /apply-template  a /v1/chat/completions body ("model" optional) -> {"prompt": text}, the
 *                    exact text the chat route would tokenize (the model's chat format, tools
 *                    text included), so a client or a test can see what the model is given.
 * They run on the connection's thread with the loaded tokenizer (no engine job). Every refusal is
 * an OpenAI error object naming the field.
 */
#include "server/server_internal.h"

#include "server/planning.h"
#include "server/wire_json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define INVALID "invalid_request_error"

/* An optional boolean field: false (with *e set) when present and not a boolean. */
static bool optional_bool(json_t *root, const char *name, bool *out, bn_api_error *e) {
    json_t *v = json_object_get(root, name);
    if (!v) return true;
    if (!json_is_boolean(v)) {
        bn_api_error_set(e, 400, INVALID, name, NULL, "'%s' must be a boolean", name);
        return false;
    }
    *out = json_is_true(v);
    return true;
}

/* True when the n bytes are valid UTF-8 (the strict form jansson accepts). */
static bool valid_utf8(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t b = s[i];
        size_t len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n) return false;
        uint32_t cp = len == 1 ? b : len == 2 ? (b & 0x1Fu) : len == 3 ? (b & 0x0Fu) : (b & 0x07u);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += len;
    }
    return true;
}

/* A token's piece: its text when that is valid UTF-8, else the array of its byte values. */
static json_t *piece_json(const bn_tokenizer *tok, int32_t id) {
    size_t len = 0;
    const uint8_t *bytes = bn_tokenizer_token_bytes(tok, id, &len);
    if (!bytes) return json_null();
    if (valid_utf8(bytes, len)) return json_stringn((const char *)bytes, len);
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < len; i++) json_array_append_new(arr, json_integer(bytes[i]));
    return arr;
}

enum MHD_Result bn_route_tokenize(bn_request_ctx *c, struct MHD_Connection *conn, const char *url) {
    (void)url;
    bn_server *s = c->srv;
    bn_api_error e = {0};
    json_t *root = bn_api_load_object(c->body ? c->body : "", c->len, &e);
    if (!root) return bn_respond_error(c, conn, &e, 0);
    json_t *content = json_object_get(root, "content");
    bool add_special = false, parse_special = true, with_pieces = false;
    if (!json_is_string(content)) {
        bn_api_error_set(&e, 400, INVALID, "content", NULL, "'content' is required and must be a string");
        goto refuse;
    }
    if (!optional_bool(root, "add_special", &add_special, &e) || !optional_bool(root, "parse_special", &parse_special, &e) ||
        !optional_bool(root, "with_pieces", &with_pieces, &e))
        goto refuse;
    bn_tokens ids = {0};
    bn_error err;
    bn_error_clear(&err);
    if (bn_tokenizer_encode(s->tok, json_string_value(content), json_string_length(content),
                            add_special && bn_tokenizer_add_bos(s->tok), parse_special, &ids, &err) != BN_OK) {
        bn_tokens_free(&ids);
        bn_api_error_set(&e, 500, "server_error", NULL, NULL, "tokenizing failed: %s", err.message);
        goto refuse;
    }
    json_t *list = json_array();
    for (size_t i = 0; list && i < ids.n; i++) {
        json_t *item = json_integer(ids.ids[i]);
        if (with_pieces) item = json_pack("{s:o,s:o}", "id", item, "piece", piece_json(s->tok, ids.ids[i]));
        json_array_append_new(list, item);
    }
    bn_tokens_free(&ids);
    json_decref(root);
    return bn_respond_json(c, conn, 200, json_pack("{s:o}", "tokens", list ? list : json_array()), 0, NULL);
refuse:
    json_decref(root);
    return bn_respond_error(c, conn, &e, 0);
}

enum MHD_Result bn_route_detokenize(bn_request_ctx *c, struct MHD_Connection *conn, const char *url) {
    (void)url;
    bn_server *s = c->srv;
    bn_api_error e = {0};
    json_t *root = bn_api_load_object(c->body ? c->body : "", c->len, &e);
    if (!root) return bn_respond_error(c, conn, &e, 0);
    json_t *tokens = json_object_get(root, "tokens");
    int32_t n_vocab = (int32_t)bn_tokenizer_n_vocab(s->tok);
    int32_t *ids = NULL;
    size_t n = json_is_array(tokens) ? json_array_size(tokens) : 0;
    if (!json_is_array(tokens)) {
        bn_api_error_set(&e, 400, INVALID, "tokens", NULL, "'tokens' is required and must be an array of token ids");
        goto refuse;
    }
    ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) {
        bn_api_error_set(&e, 500, "server_error", NULL, NULL, "out of memory");
        goto refuse;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(tokens, i);
        json_int_t id = json_is_integer(v) ? json_integer_value(v) : -1;
        if (id < 0 || id >= n_vocab) {
            char param[48];
            snprintf(param, sizeof param, "tokens[%zu]", i);
            bn_api_error_set(&e, 400, INVALID, param, NULL, "'%s' must be a token id from 0 to %d", param,
                             (int)n_vocab - 1);
            goto refuse;
        }
        ids[i] = (int32_t)id;
    }
    char *text = NULL;
    size_t len = 0;
    bn_error err;
    bn_error_clear(&err);
    if (bn_tokenizer_decode(s->tok, ids, n, false, &text, &len, &err) != BN_OK) {
        bn_api_error_set(&e, 500, "server_error", NULL, NULL, "detokenizing failed: %s", err.message);
        goto refuse;
    }
    free(ids);
    json_decref(root);
    json_t *body = json_pack("{s:o}", "content", bn_json_text(text, len));
    free(text);
    return bn_respond_json(c, conn, 200, body, 0, NULL);
refuse:
    free(ids);
    json_decref(root);
    return bn_respond_error(c, conn, &e, 0);
}

enum MHD_Result bn_route_props(bn_request_ctx *c, struct MHD_Connection *conn, const char *url) {
    (void)url;
    bn_server *s = c->srv;
    const bn_model_config *mc = bn_model_get_config(s->model);
    int n_ctx = bn_engine_ctx(s->engine);
    json_t *settings = json_pack("{s:i,s:s}", "n_ctx", n_ctx, "model", s->model_id);
    json_t *body = json_pack("{s:s,s:s,s:s,s:o,s:i,s:i,s:i,s:s,s:s,s:s,s:s,s:b}", "model", s->model_id,
                             "model_path", s->model_path, "architecture", mc->arch_name,
                             "default_generation_settings", settings, "n_ctx", n_ctx, "n_ctx_train", mc->n_ctx_train,
                             "total_slots", s->cfg.parallel, "chat_format", s->format ? s->format->name : "",
                             "device", s->device_desc, "build_info", bn_version(), "server", "bitnet-c",
                             "prompt_cache", !s->cfg.no_prompt_cache);
    if (body) json_object_set_new(body, "n_vocab", json_integer(bn_tokenizer_n_vocab(s->tok)));
    if (body) json_object_set_new(body, "n_embd", json_integer(mc->dim)); /* the embeddings' size */
    const char *gpu = bn_model_gpu_name(s->model);
    if (body && gpu) json_object_set_new(body, "gpu", json_string(gpu));
    return bn_respond_json(c, conn, 200, body, 0, NULL);
}

enum MHD_Result bn_route_apply_template(bn_request_ctx *c, struct MHD_Connection *conn, const char *url) {
    (void)url;
    bn_server *s = c->srv;
    bn_api_error e = {0};
    json_t *root = bn_api_load_object(c->body ? c->body : "", c->len, &e);
    if (!root) return bn_respond_error(c, conn, &e, 0);
    /* llama-server's route takes the chat body without "model": the served one is meant */
    char *body = NULL;
    if (!json_object_get(root, "model")) {
        if (json_object_set_new(root, "model", json_string(s->model_id)) == 0) body = json_dumps(root, JSON_COMPACT);
        if (!body) {
            json_decref(root);
            bn_api_error_set(&e, 500, "server_error", NULL, NULL, "out of memory");
            return bn_respond_error(c, conn, &e, 0);
        }
    }
    json_decref(root);
    int32_t tok_vocab = (int32_t)bn_tokenizer_n_vocab(s->tok), model_vocab = bn_model_get_config(s->model)->n_vocab;
    const bn_api_limits lim = {tok_vocab < model_vocab ? tok_vocab : model_vocab};
    bn_api_request req;
    bn_status st = bn_server_parse_chat_request(&req, &e, body ? body : c->body, body ? strlen(body) : c->len, &lim);
    free(body);
    if (st) return bn_respond_error(c, conn, &e, 0);
    if (strcmp(req.model, s->model_id) != 0) {
        bn_api_error_set(&e, 404, "invalid_request_error", "model", "model_not_found",
                         "The model '%.100s' does not exist; this server serves '%s'", req.model, s->model_id);
        bn_api_request_free(&req);
        return bn_respond_error(c, conn, &e, 0);
    }
    const bn_plan_context pctx = {.tok = s->tok, .format = s->format, .model_id = s->model_id,
                                  .n_ctx = bn_engine_ctx(s->engine)};
    bn_chat_text text = {0};
    bn_error err;
    bn_error_clear(&err);
    st = bn_plan_chat_text(&text, &pctx, &req, &err);
    bn_api_request_free(&req);
    if (st) {
        bool oom = err.code == BN_ERR_NOMEM;
        bn_api_error_set(&e, oom ? 500 : 400, oom ? "server_error" : INVALID, oom ? NULL : "messages", NULL, "%s",
                         err.message);
        return bn_respond_error(c, conn, &e, 0);
    }
    json_t *reply = json_pack("{s:o}", "prompt", bn_json_text(text.text, text.len));
    bn_chat_text_free(&text);
    return bn_respond_json(c, conn, 200, reply, 0, NULL);
}
