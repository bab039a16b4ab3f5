/*
 * embeddings.c: POST /v1/embeddings (see embeddings.h): the body's inputs -> token lists, one
 * engine job for all of them (engine.h runs it between decode steps), the vectors -> the
 * response. The connection's thread waits for the job, watching the socket: a client that goes
 * away cancels it.
 */
#include "server/embeddings.h"

#include "runtime/generation.h"
#include "server/server_internal.h"
#include "server/wire_json.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define INVALID "invalid_request_error"

static bn_status refuse(bn_api_error *e, const char *param, const char *code, const char *message) {
    bn_api_error_set(e, 400, INVALID, param, code, "%s", message);
    return BN_ERR_INVALID;
}

static bn_status out_of_memory(bn_api_error *e) {
    bn_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    return BN_ERR_NOMEM;
}

/* Token ids from a JSON array (non-empty, integers below n_vocab) into *ids; param names the
 * array in errors. */
static bn_status token_input(bn_tokens *ids, const json_t *arr, const char *param, const bn_embed_limits *lim,
                             bn_api_error *e) {
    char message[200];
    size_t n = json_array_size(arr);
    if (n == 0) {
        snprintf(message, sizeof message, "'%s': a token array must not be empty", param);
        return refuse(e, param, NULL, message);
    }
    for (size_t t = 0; t < n; t++) {
        const json_t *v = json_array_get(arr, t);
        json_int_t id = json_is_integer(v) ? json_integer_value(v) : -1;
        if (id < 0 || id >= lim->n_vocab) {
            char where[64];
            snprintf(where, sizeof where, "%s[%zu]", param, t);
            snprintf(message, sizeof message, "'%s' must be a token id from 0 to %d", where, (int)lim->n_vocab - 1);
            return refuse(e, where, NULL, message);
        }
        bn_error err;
        if (bn_tokens_push(ids, (int32_t)id, &err) != BN_OK) return out_of_memory(e);
    }
    return BN_OK;
}

/* A text input, tokenized as a completions prompt is (BOS when the model asks for it, control
 * tokens written in the text stay text). */
static bn_status text_input(bn_tokens *ids, const json_t *str, const char *param, const bn_embed_limits *lim,
                            bn_api_error *e) {
    if (json_string_length(str) == 0) {
        char message[160];
        snprintf(message, sizeof message, "'%s' must not be an empty string", param);
        return refuse(e, param, NULL, message);
    }
    bn_error err;
    bn_error_clear(&err);
    if (bn_tokenizer_encode(lim->tok, json_string_value(str), json_string_length(str), bn_tokenizer_add_bos(lim->tok),
                            false, ids, &err) != BN_OK) {
        if (err.code == BN_ERR_NOMEM) return out_of_memory(e);
        return refuse(e, param, NULL, err.message);
    }
    return BN_OK;
}

/* The body's `input` -> r->inputs. */
static bn_status parse_input(bn_embed_request *r, const json_t *input, const bn_embed_limits *lim, bn_api_error *e) {
    static const char *const forms =
        "'input' is required: a string, an array of strings, an array of token ids or an array of token arrays";
    if (!input || (!json_is_string(input) && !json_is_array(input))) return refuse(e, "input", NULL, forms);
    bool one = json_is_string(input) || json_is_integer(json_array_get(input, 0));
    size_t n = one ? 1 : json_array_size(input);
    if (n == 0) return refuse(e, "input", NULL, "'input' must not be an empty array");
    if (n > BN_EMBED_MAX_INPUTS) {
        char message[120];
        snprintf(message, sizeof message, "'input' has %zu items; at most %d are allowed", n, BN_EMBED_MAX_INPUTS);
        return refuse(e, "input", NULL, message);
    }
    r->inputs = calloc(n, sizeof *r->inputs);
    if (!r->inputs) return out_of_memory(e);
    r->n_inputs = n;
    for (size_t i = 0; i < n; i++) {
        const json_t *item = one ? input : json_array_get(input, i);
        char param[32];
        snprintf(param, sizeof param, one ? "input" : "input[%zu]", i);
        bn_status st;
        if (json_is_string(item)) {
            st = text_input(&r->inputs[i], item, param, lim, e);
        } else if (json_is_array(item)) {
            st = token_input(&r->inputs[i], item, param, lim, e);
        } else {
            char message[160];
            snprintf(message, sizeof message, "'%s' must be a string or an array of token ids", param);
            st = refuse(e, param, NULL, message);
        }
        if (st) return st;
        size_t count = r->inputs[i].n;
        if (count > (size_t)lim->n_ctx) {
            char message[200];
            snprintf(message, sizeof message,
                     "This model's maximum context length is %d tokens, however '%s' has %zu tokens.", lim->n_ctx,
                     param, count);
            return refuse(e, param, "context_length_exceeded", message);
        }
        r->n_tokens += count;
    }
    return BN_OK;
}

static bn_status parse_fields(bn_embed_request *r, const json_t *root, const bn_embed_limits *lim, bn_api_error *e) {
    const json_t *model = json_object_get(root, "model");
    if (!json_is_string(model)) return refuse(e, "model", NULL, "'model' is required and must be a string");
    const json_t *format = json_object_get(root, "encoding_format");
    if (format && !json_is_null(format)) {
        const char *f = json_is_string(format) ? json_string_value(format) : "";
        if (strcmp(f, "float") != 0 && strcmp(f, "base64") != 0)
            return refuse(e, "encoding_format", NULL, "'encoding_format' must be \"float\" or \"base64\"");
        r->base64 = !strcmp(f, "base64");
    }
    const json_t *dims = json_object_get(root, "dimensions");
    if (dims && !json_is_null(dims) && (!json_is_integer(dims) || json_integer_value(dims) != lim->dim)) {
        char message[200];
        snprintf(message, sizeof message,
                 "'dimensions': this model's embeddings have %d dimensions, and other sizes are not supported "
                 "(give %d or leave it out)", lim->dim, lim->dim);
        return refuse(e, "dimensions", NULL, message);
    }
    const json_t *user = json_object_get(root, "user");
    if (user && !json_is_null(user) && !json_is_string(user))
        return refuse(e, "user", NULL, "'user' must be a string");
    bn_status st = parse_input(r, json_object_get(root, "input"), lim, e);
    if (st) return st;
    if (strcmp(json_string_value(model), lim->model_id) != 0) {
        bn_api_error_set(e, 404, INVALID, "model", "model_not_found",
                         "The model '%.100s' does not exist; this server serves '%s'", json_string_value(model),
                         lim->model_id);
        return BN_ERR_INVALID;
    }
    return BN_OK;
}

bn_status bn_embed_parse(bn_embed_request *out, bn_api_error *e, const char *json, size_t len,
                         const bn_embed_limits *lim) {
    memset(out, 0, sizeof *out);
    json_t *root = bn_api_load_object(json, len, e);
    if (!root) return BN_ERR_INVALID;
    bn_status st = parse_fields(out, root, lim, e);
    json_decref(root);
    if (st) bn_embed_request_free(out);
    return st;
}

void bn_embed_request_free(bn_embed_request *r) {
    for (size_t i = 0; r->inputs && i < r->n_inputs; i++) bn_tokens_free(&r->inputs[i]);
    free(r->inputs);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- response */

/* The response text as it grows; ok turns false (for good) when memory runs out. */
typedef struct text_buf {
    char *text;
    size_t len, cap;
    bool ok;
} text_buf;

static void put(text_buf *b, const char *s, size_t n) {
    if (b->ok && !bn_text_append(&b->text, &b->len, &b->cap, s, n)) b->ok = false;
}

static void put_str(text_buf *b, const char *s) { put(b, s, strlen(s)); }

/* A JSON string holding the base64 (RFC 4648, padded) of n little-endian float32 values. */
static void put_base64(text_buf *b, const float *v, int n) {
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n_bytes = (size_t)n * 4;
    uint8_t *bytes = malloc(n_bytes ? n_bytes : 1);
    char *out = malloc((n_bytes + 2) / 3 * 4 + 2);
    if (!bytes || !out) {
        b->ok = false;
    } else {
        for (int i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, &v[i], 4);
            for (int k = 0; k < 4; k++) bytes[(size_t)i * 4 + (size_t)k] = (uint8_t)(u >> (8 * k));
        }
        size_t k = 0;
        out[k++] = '"';
        for (size_t i = 0; i < n_bytes; i += 3) {
            uint32_t group = (uint32_t)bytes[i] << 16;
            if (i + 1 < n_bytes) group |= (uint32_t)bytes[i + 1] << 8;
            if (i + 2 < n_bytes) group |= bytes[i + 2];
            out[k++] = digits[group >> 18];
            out[k++] = digits[(group >> 12) & 63];
            out[k++] = i + 1 < n_bytes ? digits[(group >> 6) & 63] : '=';
            out[k++] = i + 2 < n_bytes ? digits[group & 63] : '=';
        }
        out[k++] = '"';
        put(b, out, k);
    }
    free(bytes);
    free(out);
}

/* The floats as a JSON array; %.9g gives back the same float32 when parsed. */
static void put_floats(text_buf *b, const float *v, int n) {
    put_str(b, "[");
    for (int i = 0; i < n && b->ok; i++) {
        char num[32];
        snprintf(num, sizeof num, "%s%.9g", i ? "," : "", (double)v[i]);
        put_str(b, num);
    }
    put_str(b, "]");
}

char *bn_embed_response(const bn_embed_request *r, const float *vectors, int dim, const char *model_id) {
    text_buf b = {.ok = true};
    char piece[128];
    put_str(&b, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < r->n_inputs && b.ok; i++) {
        snprintf(piece, sizeof piece, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":", i ? "," : "", i);
        put_str(&b, piece);
        if (r->base64)
            put_base64(&b, vectors + i * (size_t)dim, dim);
        else
            put_floats(&b, vectors + i * (size_t)dim, dim);
        put_str(&b, "}");
    }
    json_t *name = bn_json_text(model_id, strlen(model_id));
    char *model = name ? json_dumps(name, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(name);
    put_str(&b, "],\"model\":");
    if (model) put_str(&b, model);
    else b.ok = false;
    free(model);
    snprintf(piece, sizeof piece, ",\"usage\":{\"prompt_tokens\":%zu,\"total_tokens\":%zu}}", r->n_tokens, r->n_tokens);
    put_str(&b, piece);
    if (!b.ok) {
        free(b.text);
        return NULL;
    }
    return b.text;
}

/* ---------------------------------------------------------------- route */

/* The connection thread's side of an engine job: filled by the engine's done callback. */
typedef struct embed_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    bn_status status;
    char message[BN_ERROR_MESSAGE_MAX];
    atomic_bool cancel;
} embed_wait;

static void embed_done(void *user, bn_status status, const char *message) {
    embed_wait *w = user;
    pthread_mutex_lock(&w->mu);
    w->done = true;
    w->status = status;
    snprintf(w->message, sizeof w->message, "%s", message ? message : "");
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Waits up to ms for the job; true once it is done. */
static bool embed_wait_for(embed_wait *w, int ms) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_nsec += (long)ms * 1000000L;
    deadline.tv_sec += deadline.tv_nsec / 1000000000L;
    deadline.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&w->mu);
    while (!w->done && pthread_cond_timedwait(&w->cv, &w->mu, &deadline) == 0) {
    }
    bool done = w->done;
    pthread_mutex_unlock(&w->mu);
    return done;
}

/* Submits the request's job and waits for it (cancelling it when the client goes away); the
 * response, or the refusal. */
static enum MHD_Result run_job(bn_request_ctx *c, struct MHD_Connection *conn, const bn_embed_request *req) {
    bn_server *s = c->srv;
    bn_api_error e = {0};
    int dim = bn_model_get_config(s->model)->dim;
    const int32_t **inputs = malloc(req->n_inputs * sizeof *inputs);
    size_t *n_tokens = malloc(req->n_inputs * sizeof *n_tokens);
    float *vectors = malloc(req->n_inputs * (size_t)dim * sizeof *vectors);
    embed_wait w = {.done = false};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    atomic_init(&w.cancel, false);
    enum MHD_Result ret;
    if (!inputs || !n_tokens || !vectors) {
        bn_api_error_set(&e, 500, "server_error", NULL, NULL, "out of memory");
        ret = bn_respond_error(c, conn, &e, 0);
        goto done;
    }
    for (size_t i = 0; i < req->n_inputs; i++) inputs[i] = req->inputs[i].ids, n_tokens[i] = req->inputs[i].n;
    const bn_engine_embed_config job = {.inputs = inputs, .n_tokens = n_tokens, .n_inputs = req->n_inputs,
                                        .bos = bn_tokenizer_bos(s->tok), .out = vectors, .cancel = &w.cancel,
                                        .done = embed_done, .user = &w};
    bn_error err;
    bn_error_clear(&err);
    if (bn_engine_submit_embed(s->engine, &job, &err) != BN_OK) {
        bn_auth_refund_tokens(&s->auth, c->key, (double)req->n_tokens, bn_engine_now_ms() / 1e3);
        if (err.code == BN_ERR_RANGE || err.code == BN_ERR_STATE) {
            bn_metrics_reject(&s->metrics, BN_REJECT_OVERLOAD);
            bn_api_error_set(&e, 503, "server_error", NULL, "server_overloaded",
                             "The server is overloaded: %s; retry later", err.message);
            ret = bn_respond_error(c, conn, &e, 1);
        } else {
            bn_api_error_set(&e, 400, INVALID, "input", NULL, "%s", err.message);
            ret = bn_respond_error(c, conn, &e, 0);
        }
        goto done;
    }
    c->inflight = true;
    atomic_fetch_add(&s->inflight, 1);
    while (!embed_wait_for(&w, 50))
        if (!atomic_load(&w.cancel) && bn_peer_closed(conn)) atomic_store(&w.cancel, true);
    if (w.status == BN_OK) {
        c->embed_tokens = req->n_tokens > INT32_MAX ? INT32_MAX : (int)req->n_tokens;
        char *text = bn_embed_response(req, vectors, dim, s->model_id);
        if (text) {
            ret = bn_respond(c, conn, 200, text, "application/json", 0, NULL, false);
            goto done;
        }
        bn_api_error_set(&e, 500, "server_error", NULL, NULL, "out of memory");
        ret = bn_respond_error(c, conn, &e, 0);
    } else if (w.status == BN_ERR_STATE && atomic_load(&w.cancel)) {
        c->status = 499; /* the client went away: nobody to answer */
        bn_metrics_request(&s->metrics, c->endpoint, 499);
        ret = MHD_NO;
    } else if (w.status == BN_ERR_STATE) {
        bn_api_error_set(&e, 503, "server_error", NULL, "server_shutdown", "The server is shutting down");
        ret = bn_respond_error(c, conn, &e, 1);
    } else {
        bn_api_error_set(&e, 500, "server_error", NULL, NULL, "embedding failed: %s", w.message);
        ret = bn_respond_error(c, conn, &e, 0);
    }
done:
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    free(inputs);
    free(n_tokens);
    free(vectors);
    return ret;
}

enum MHD_Result bn_route_embeddings(bn_request_ctx *c, struct MHD_Connection *conn, const char *url) {
    (void)url;
    bn_server *s = c->srv;
    bn_api_error e = {0};
    if (!bn_server_model_intact(s, &e)) return bn_respond_error(c, conn, &e, 0);
    const bn_model_config *mc = bn_model_get_config(s->model);
    int32_t tok_vocab = (int32_t)bn_tokenizer_n_vocab(s->tok);
    const bn_embed_limits lim = {.tok = s->tok, .model_id = s->model_id,
                                 .n_vocab = tok_vocab < mc->n_vocab ? tok_vocab : mc->n_vocab,
                                 .n_ctx = bn_engine_ctx(s->engine), .dim = mc->dim};
    bn_embed_request req;
    if (bn_embed_parse(&req, &e, c->body ? c->body : "", c->len, &lim)) return bn_respond_error(c, conn, &e, 0);
    int retry = 0;
    enum MHD_Result ret;
    if (!bn_auth_take_tokens(&s->auth, c->key, (double)req.n_tokens, bn_engine_now_ms() / 1e3, &retry)) {
        bn_metrics_reject(&s->metrics, BN_REJECT_RATE_LIMIT);
        bn_api_error_set(&e, 429, "rate_limit_error", NULL, "rate_limit_exceeded",
                         "Rate limit reached for tokens per minute (limit %.0f); retry in %d s", s->cfg.rate_limit_tpm,
                         retry);
        ret = bn_respond_error(c, conn, &e, retry);
    } else {
        ret = run_job(c, conn, &req);
    }
    bn_embed_request_free(&req);
    return ret;
}
