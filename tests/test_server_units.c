/*
 * test_server_units.c: the server's pure parts without HTTP: request parsing (valid fields and
 * one 400 per invalid field, naming it), the JSON-Schema grammar (random walks always end in
 * JSON that parses and satisfies the schema; wrong documents are rejected), and the engine
 * (continuous batching of many jobs gives exactly the tokens of a one-sequence greedy loop over
 * bn_model_decode; cancelled jobs free their slots; grammar jobs on random weights give valid JSON),
 * request planning (ids, choices, token limits, stops, grammar and the refusals, without a
 * server), a non-streaming wait that reads the engine's events as they come, the routing key
 * behind X-Bitnet-Slot-Hint, and /health, /live, /ready while the model loads, serves and drains.
 */
#include "testutil.h"

#include "model/model.h"
#include "model/synth.h"
#include "chat/chat.h"
#include "server/engine.h"
#include "server/completion.h"
#include "server/planning.h"
#include "server/routing_key.h"
#include "sampling/json_schema.h"
#include "server/request.h"
#include "server/server.h"
#include "tokenizer/tokenizer.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static const bn_api_limits limits = {262};

static void test_parse_valid(void) {
    bn_api_request r;
    bn_api_error e = {0};
    const char *body = "{\"model\":\"m\",\"prompt\":[\"a\",\"bc\"],\"max_tokens\":5,\"temperature\":0,"
                       "\"top_p\":0.5,\"stop\":[\"x\",\"yy\"],\"seed\":7,\"n\":2,\"echo\":true,\"logprobs\":3,"
                       "\"presence_penalty\":1,\"frequency_penalty\":-1,\"logit_bias\":{\"10\":-100,\"3\":5},"
                       "\"user\":\"u\",\"stream\":true,\"stream_options\":{\"include_usage\":true}}";
    CHECKF(bn_server_parse_completion_request(&r, &e, body, strlen(body), &limits) == BN_OK, "%s", e.message);
    CHECK(r.n_prompts == 2 && !strcmp(r.prompts[1].text, "bc"));
    CHECK(r.max_tokens == 5 && r.temperature == 0 && r.top_p == 0.5f && r.n == 2 && r.echo && r.logprobs == 3);
    CHECK(r.n_stops == 2 && !strcmp(r.stops[1], "yy") && r.has_seed && r.seed == 7);
    CHECK(r.n_biases == 2 && r.stream && r.include_usage && r.user && !strcmp(r.user, "u"));
    /* OpenAI defaults for the extension fields: all off */
    CHECK(r.top_k == 0 && r.min_p == 0.0f && r.typical_p == 1.0f && r.repetition_penalty == 1.0f &&
          r.penalty_last_n == -1 && !r.ignore_eos);
    bn_api_request_free(&r);

    /* llama.cpp / vLLM extension fields reach the sampler; unknown fields are ignored */
    body = "{\"model\":\"m\",\"prompt\":\"a\",\"top_k\":7,\"min_p\":0.1,\"typical_p\":0.5,"
           "\"repetition_penalty\":1.3,\"repeat_last_n\":32,\"ignore_eos\":true,\"mirostat\":2,"
           "\"guided_json\":{\"type\":\"object\"}}";
    CHECKF(bn_server_parse_completion_request(&r, &e, body, strlen(body), &limits) == BN_OK, "%s", e.message);
    CHECK(r.top_k == 7 && r.min_p == 0.1f && r.typical_p == 0.5f && r.repetition_penalty == 1.3f &&
          r.penalty_last_n == 32 && r.ignore_eos);
    CHECK(r.response_format == BN_RESPONSE_JSON_SCHEMA && r.schema && !strcmp(r.schema_param, "guided_json"));
    bn_sampler_params sp = bn_api_sampler_params(&r, 0, 4096);
    CHECK(sp.top_k == 7 && sp.min_p == 0.1f && sp.typical_p == 0.5f && sp.repetition_penalty == 1.3f &&
          sp.penalty_last_n == 32);
    bn_api_request_free(&r);
    body = "{\"model\":\"m\",\"prompt\":\"a\",\"top_k\":-1,\"repeat_penalty\":1.1}";
    CHECK(bn_server_parse_completion_request(&r, &e, body, strlen(body), &limits) == BN_OK);
    sp = bn_api_sampler_params(&r, 0, 512);
    CHECK(r.top_k == 0 && r.repetition_penalty == 1.1f && sp.penalty_last_n == 512); /* window: the context */
    bn_api_request_free(&r);

    body = "{\"model\":\"m\",\"prompt\":[[1,2,3],[4]]}";
    CHECK(bn_server_parse_completion_request(&r, &e, body, strlen(body), &limits) == BN_OK);
    CHECK(r.n_prompts == 2 && r.prompts[0].is_tokens && r.prompts[0].n_ids == 3 && r.prompts[1].ids[0] == 4);
    CHECK(r.max_tokens == 16 && r.logprobs == -1); /* OpenAI defaults */
    bn_api_request_free(&r);

    body = "{\"model\":\"m\",\"messages\":[{\"role\":\"developer\",\"content\":\"s\"},"
           "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]},"
           "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
           "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"x\\\":1}\"}}]},"
           "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"42\"}],"
           "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\"}}}],"
           "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"f\"}},\"max_completion_tokens\":9,"
           "\"logprobs\":true,\"top_logprobs\":2}";
    CHECK(bn_server_parse_chat_request(&r, &e, body, strlen(body), &limits) == BN_OK);
    CHECK(r.n_messages == 4 && !strcmp(r.messages[0].role, "system"));
    CHECK(!strcmp(r.messages[1].content, "a\nb"));
    CHECK_STR_CONTAINS(r.messages[2].content, "{\"name\":\"f\",\"arguments\":{\"x\":1}}");
    CHECK(r.tool_choice == BN_TOOL_CHOICE_NAMED && r.named_tool == 0 && r.max_tokens == 9 && r.logprobs == 2);
    char *tp = bn_api_tools_prompt(&r);
    CHECK(tp && strstr(tp, "\"name\":\"f\""));
    free(tp);
    bn_api_request_free(&r);
}

static void test_parse_invalid(void) {
    static const struct { bool chat; const char *body; const char *param; } cases[] = {
        {false, "{", ""},
        {false, "[1]", ""},
        {false, "{\"prompt\":\"x\"}", "model"},
        {false, "{\"model\":1,\"prompt\":\"x\"}", "model"},
        {false, "{\"model\":\"m\"}", "prompt"},
        {false, "{\"model\":\"m\",\"prompt\":{}}", "prompt"},
        {false, "{\"model\":\"m\",\"prompt\":[]}", "prompt"},
        {false, "{\"model\":\"m\",\"prompt\":[1,99999]}", "prompt"},
        {false, "{\"model\":\"m\",\"prompt\":[\"a\",7]}", "prompt[1]"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"max_tokens\":0}", "max_tokens"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"max_tokens\":1e300}", "max_tokens"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"max_tokens\":99999999999999999999}", ""},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"temperature\":3}", "temperature"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"top_p\":\"1\"}", "top_p"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"n\":0}", "n"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"stop\":[1]}", "stop"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "stop"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"logit_bias\":{\"abc\":1}}", "logit_bias.abc"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"logit_bias\":{\"1\":101}}", "logit_bias.1"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"logprobs\":6}", "logprobs"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"echo\":1}", "echo"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"stream\":\"yes\"}", "stream"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"stream_options\":{\"include_usage\":3}}", "stream_options.include_usage"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"presence_penalty\":-3}", "presence_penalty"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"top_k\":-2}", "top_k"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"top_k\":1.5}", "top_k"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"min_p\":2}", "min_p"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"typical_p\":0}", "typical_p"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"repetition_penalty\":0}", "repetition_penalty"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"repeat_penalty\":\"2\"}", "repeat_penalty"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"repeat_last_n\":-5}", "repeat_last_n"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"ignore_eos\":1}", "ignore_eos"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"guided_grammar\":\"root ::= \\\"a\\\"\"}", "guided_grammar"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"grammar\":\"\"}", "grammar"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"guided_choice\":[]}", "guided_choice"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"guided_choice\":[\"a\",1]}", "guided_choice"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"grammar\":\"root ::= [a]\",\"guided_regex\":\"a\"}", "guided_regex"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"json_schema\":[]}", "json_schema"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"json_schema\":{},\"guided_json\":{}}", "guided_json"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"seed\":1.5}", "seed"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"user\":5}", "user"},
        {false, "{\"model\":\"m\",\"prompt\":\"x\",\"model\":\"n\"}", ""},
        {false, "{\"model\":\"m\",\"prompt\":\"\xff\"}", ""},
        {true, "{\"model\":\"m\"}", "messages"},
        {true, "{\"model\":\"m\",\"messages\":[]}", "messages"},
        {true, "{\"model\":\"m\",\"messages\":[1]}", "messages[0]"},
        {true, "{\"model\":\"m\",\"messages\":[{\"role\":\"king\",\"content\":\"x\"}]}", "messages[0].role"},
        {true, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}", "messages[0].content"},
        {true, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":5}]}", "messages[0].content"},
        {true, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", "messages[0].content[0]"},
        {true, "{\"model\":\"m\",\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", "messages[0].tool_call_id"},
        {true, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":{}}", "tools"},
        {true, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"a b\"}}]}", "tools[0].function.name"},
        {true, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":\"required\"}", "tool_choice"},
        {true, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"g\"}}}", "tool_choice"},
        {true, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"response_format\":{\"type\":\"xml\"}}", "response_format.type"},
        {true, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"n\"}}}", "response_format.json_schema.schema"},
        {true, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_logprobs\":2}", "top_logprobs"},
        {true, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_completion_tokens\":-1}", "max_completion_tokens"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bn_api_request r;
        bn_api_error e = {0};
        size_t len = strlen(cases[i].body);
        bn_status st = cases[i].chat ? bn_server_parse_chat_request(&r, &e, cases[i].body, len, &limits)
                                     : bn_server_parse_completion_request(&r, &e, cases[i].body, len, &limits);
        CHECKF(st == BN_ERR_INVALID && e.status == 400, "case %zu: %s", i, cases[i].body);
        CHECKF(!strcmp(e.param, cases[i].param), "case %zu: param '%s', expected '%s' (%s)", i, e.param,
               cases[i].param, e.message);
        if (cases[i].param[0]) CHECKF(strstr(e.message, cases[i].param) != NULL, "case %zu: message %s", i, e.message);
        CHECK(r.model == NULL && r.prompts == NULL);
    }
    /* deep nesting is rejected by the JSON parser, not by a crash */
    size_t depth = 100000;
    char *deep = malloc(depth * 2 + 1);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    bn_api_request r;
    bn_api_error e = {0};
    CHECK(bn_server_parse_completion_request(&r, &e, deep, depth * 2, &limits) == BN_ERR_INVALID && e.status == 400);
    free(deep);
}

/* Checks a parsed document against the test schema below. */
static bool satisfies(const json_t *v) {
    if (!json_is_object(v)) return false;
    const json_t *name = json_object_get(v, "name"), *unit = json_object_get(v, "unit");
    const json_t *tags = json_object_get(v, "tags"), *inner = json_object_get(v, "inner");
    if (!json_is_string(name) || !json_is_string(unit) || !json_is_object(inner)) return false;
    if (strcmp(json_string_value(unit), "c") && strcmp(json_string_value(unit), "fahrenheit")) return false;
    if (!json_is_boolean(json_object_get(inner, "ok"))) return false;
    const json_t *n = json_object_get(inner, "n");
    if (n && !json_is_integer(n)) return false;
    const json_t *x = json_object_get(v, "x");
    if (x && !json_is_number(x)) return false;
    if (tags) {
        if (!json_is_array(tags)) return false;
        for (size_t i = 0; i < json_array_size(tags); i++)
            if (!json_is_string(json_array_get(tags, i))) return false;
    }
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)v, key, val)
        if (strcmp(key, "name") && strcmp(key, "unit") && strcmp(key, "tags") && strcmp(key, "inner") && strcmp(key, "x"))
            return false;
    return true;
}

static const char *test_schema =
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"unit\":{\"enum\":[\"c\",\"fahrenheit\"]},"
    "\"x\":{\"type\":\"number\"},\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
    "\"inner\":{\"type\":\"object\",\"properties\":{\"ok\":{\"type\":\"boolean\"},\"n\":{\"type\":\"integer\"}},"
    "\"required\":[\"ok\"]}},\"required\":[\"name\",\"unit\",\"inner\"]}";

/* Feeds a whole document to a fresh matcher: accepted as a complete sentence? */
static bool matches(bn_grammar_matcher *m, const char *doc) {
    bn_grammar_matcher_reset(m);
    return bn_grammar_matcher_accept(m, (const uint8_t *)doc, strlen(doc)) && bn_grammar_matcher_outlook(m).accepting;
}

static void test_grammar(void) {
    bn_error err;
    bn_grammar *g = NULL;
    bn_grammar_matcher *m = NULL;
    CHECK_OK(bn_json_schema_grammar(&g, test_schema, &err), &err);
    if (!g) return;
    CHECK_OK(bn_grammar_matcher_new(&m, g, &err), &err);
    char buf[512];
    /* the shortest completion of the empty document is itself a valid document */
    size_t n = bn_grammar_matcher_completion(m, buf, sizeof buf);
    CHECKF(n != (size_t)-1 && !strcmp(buf, "{\"name\":\"\",\"unit\":\"c\",\"inner\":{\"ok\":true}}"), "got %s", buf);
    /* accepted and rejected documents (properties come in the declared order) */
    static const struct { const char *doc; bool ok; } docs[] = {
        {"{\"name\":\"a\\n\xc3\xa9\",\"unit\":\"fahrenheit\",\"x\":1.5e3,\"tags\":[\"p\",\"q\"],\"inner\":{\"ok\":false,\"n\":-12}}", true},
        {"{ \"name\": \"a\", \"unit\": \"c\", \"inner\": {\"ok\": true} }", true},
        {"{\"name\":1}", false},
        {"{\"name\":\"a\",\"unit\":\"k\"}", false},
        {"{\"name\":\"a\",\"unit\":\"c\"}", false},          /* inner is required */
        {"{\"name\":\"a\",\"name\":\"b\"}", false},           /* duplicate key */
        {"{\"other\":1}", false},
        {"{\"inner\":{\"ok\":true,\"n\":1.5}}", false},        /* integer */
        {"{\"name\":\"\x80\"}", false},                        /* invalid UTF-8 */
        {"{\"name\":\"a\x01\"}", false},                       /* control character */
        {"[1]", false},
        {"{\"x\":01}", false},
        {"{\"name\":\"a\",\"unit\":\"c\",\"inner\":{\"ok\":true}}      ", false}, /* five spaces */
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
        CHECKF(matches(m, docs[i].doc) == docs[i].ok, "doc %zu: %s", i, docs[i].doc);
    /* random walks: choose random bytes among those allowed, then complete; always valid */
    bn_test_rng rng;
    bn_test_rng_seed(&rng, 42);
    static const char alphabet[] = "{}[]\":,. -+eE0123456789abcdefghijklmnopqrstuvwxyz\\\n\xc3\xa9";
    int valid = 0;
    for (int walk = 0; walk < 300; walk++) {
        bn_grammar_matcher_reset(m);
        char doc[1024];
        size_t len = 0;
        int steps = (int)bn_test_rng_range(&rng, 0, 120);
        for (int k = 0; k < steps && bn_grammar_matcher_outlook(m).can_continue; k++) {
            uint8_t allowed[sizeof alphabet];
            int n_allowed = 0;
            for (size_t a = 0; a + 1 < sizeof alphabet; a++)
                if (bn_grammar_matcher_try(m, (const uint8_t *)&alphabet[a], 1).ok) allowed[n_allowed++] = (uint8_t)alphabet[a];
            if (n_allowed == 0) break;
            uint8_t c = allowed[bn_test_rng_range(&rng, 0, n_allowed - 1)];
            CHECK(bn_grammar_matcher_accept(m, &c, 1));
            doc[len++] = (char)c;
        }
        size_t k = bn_grammar_matcher_completion(m, doc + len, sizeof doc - len);
        if (k == (size_t)-1) {
            CHECK(!"completion too long");
            continue;
        }
        CHECK(k == bn_grammar_matcher_outlook(m).completion_len);
        CHECK(bn_grammar_matcher_accept(m, (const uint8_t *)doc + len, k));
        len += k;
        doc[len] = '\0';
        json_t *v = json_loadb(doc, len, 0, NULL);
        bool ok = v && satisfies(v) && bn_grammar_matcher_outlook(m).accepting;
        CHECKF(ok, "walk %d: %s", walk, doc);
        valid += ok;
        json_decref(v);
    }
    CHECK(valid == 300);
    bn_grammar_matcher_free(m);
    bn_grammar_free(g);

    /* tool-call grammar and refused schemas */
    const char *names[] = {"get_weather", "add"};
    const char *schemas[] = {"{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}", NULL};
    CHECK_OK(bn_json_tool_call_grammar(&g, names, schemas, 2, &err), &err);
    CHECK_OK(bn_grammar_matcher_new(&m, g, &err), &err);
    CHECK(matches(m, "{\"name\":\"add\",\"arguments\":{\"a\":[1,{\"b\":null}]}}"));
    CHECK(!matches(m, "{\"name\":\"get_weather\",\"arguments\":{}}"));
    CHECK(matches(m, "{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Oslo\"}}"));
    bn_grammar_matcher_free(m);
    bn_grammar_free(g);
    CHECK(bn_json_schema_grammar(&g, "{\"type\":\"object\",\"properties\":{\"a\":{\"$ref\":\"#/x\"}}}", &err) != BN_OK);
    CHECK_STR_CONTAINS(err.message, "$ref");
    CHECK(bn_json_schema_grammar(&g, "{\"type\":\"object\",\"properties\":{\"a\":{\"multipleOf\":3}}}", &err) == BN_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(err.message, "schema.properties.a.multipleOf");
}

/* ---------------------------------------------------------------- engine */

typedef struct collected {
    pthread_mutex_t mu;
    int32_t tokens[16][64];
    int n_tokens[16];
    char text[16][1024];
    size_t text_len[16];
    int finish[16];
    int n_cached[16];
    int done;
    atomic_bool *cancel_on_token; /* set when any token arrives (NULL: never) */
} collected;

static void collect(void *user, const bn_engine_event *ev) {
    collected *c = user;
    pthread_mutex_lock(&c->mu);
    if (ev->kind == BN_ENGINE_TOKEN) {
        if (ev->sample && c->n_tokens[ev->index] < 64) c->tokens[ev->index][c->n_tokens[ev->index]++] = ev->sample->token;
        if (c->text_len[ev->index] + ev->text_len < sizeof c->text[0]) {
            memcpy(c->text[ev->index] + c->text_len[ev->index], ev->text, ev->text_len);
            c->text_len[ev->index] += ev->text_len;
        }
    } else {
        c->finish[ev->index] = ev->finish;
        c->n_cached[ev->index] = ev->n_cached;
        c->done++;
    }
    pthread_mutex_unlock(&c->mu);
    if (ev->kind == BN_ENGINE_TOKEN && c->cancel_on_token) atomic_store(c->cancel_on_token, true);
}

static void wait_done(collected *c, int n) {
    for (int i = 0; i < 6000; i++) {
        pthread_mutex_lock(&c->mu);
        int d = c->done;
        pthread_mutex_unlock(&c->mu);
        if (d >= n) return;
        usleep(5000);
    }
}

/* Greedy reference: one sequence, one token per decode after the prompt. */
static int greedy_reference(bn_model *m, const int32_t *prompt, int n_prompt, int n_gen, int32_t *out) {
    bn_sequence *seq = NULL;
    bn_error err;
    if (bn_sequence_create(m, 256, &seq, &err)) return 0;
    int n_vocab = bn_model_get_config(m)->n_vocab;
    float *logits = malloc((size_t)n_vocab * sizeof *logits);
    int count = 0;
    for (int i = 0; i < n_prompt; i++) {
        bn_batch_entry e = {seq, i, prompt[i], i == n_prompt - 1};
        bn_model_decode(m, &e, 1, logits, &err);
    }
    while (count < n_gen) {
        int best = 0;
        for (int v = 1; v < n_vocab; v++)
            if (logits[v] > logits[best]) best = v;
        out[count++] = best;
        bn_batch_entry e = {seq, bn_sequence_length(seq), best, true};
        if (bn_model_decode(m, &e, 1, logits, &err)) break;
    }
    free(logits);
    bn_sequence_free(seq);
    return count;
}

/* Writes the tiny synthetic model under a fresh test directory and loads it with its tokenizer;
 * false (after a failed check) when that fails. The caller frees all four. */
static bool tiny_model(const char *name, char **dir, char **path, bn_model **m, bn_tokenizer **tok) {
    *dir = bn_test_tmpdir(name);
    *path = bn_test_path(*dir, "tiny.gguf");
    *m = NULL;
    *tok = NULL;
    bn_error err;
    bn_synth_options o;
    CHECK_OK(bn_synth_preset(&o, "tiny", &err), &err);
    CHECK_OK(bn_synth_write(*path, &o, &err), &err);
    bn_model_options mo = bn_model_options_default();
    CHECK_OK(bn_model_load(*path, &mo, m, &err), &err);
    if (*m) CHECK_OK(bn_tokenizer_from_gguf(tok, bn_model_get_gguf(*m), NULL, &err), &err);
    return *m && *tok;
}

static void test_engine(void) {
    char *dir, *path;
    bn_model *m;
    bn_tokenizer *tok;
    bn_error err;
    if (!tiny_model("server_units", &dir, &path, &m, &tok)) goto out;
    bn_engine *e = NULL;
    /* 3 slots and a small prefill chunk: prompts are split over steps and jobs wait in the queue */
    const bn_engine_options eo = {.n_slots = 3, .n_ctx = 256, .max_queue = 16, .prefill_chunk = 7};
    CHECK_OK(bn_engine_create(&e, m, tok, &eo, NULL, &err), &err);
    if (!e) goto out;
    enum { N_JOBS = 8, N_GEN = 12 };
    int32_t prompts[N_JOBS][40];
    int n_prompt[N_JOBS];
    bn_test_rng rng;
    bn_test_rng_seed(&rng, 7);
    for (int j = 0; j < N_JOBS; j++) {
        n_prompt[j] = (int)bn_test_rng_range(&rng, 1, 40);
        for (int t = 0; t < n_prompt[j]; t++) prompts[j][t] = (int32_t)bn_test_rng_range(&rng, 0, 258);
    }
    collected c;
    memset(&c, 0, sizeof c);
    pthread_mutex_init(&c.mu, NULL);
    bn_engine_job_config jobs[N_JOBS];
    for (int j = 0; j < N_JOBS; j++) {
        jobs[j] = (bn_engine_job_config){
            .prompt = prompts[j], .n_prompt = (size_t)n_prompt[j],
            .gen = {.sampling = bn_sampler_params_greedy(), .max_tokens = N_GEN, .ignore_eog = true,
                    .want_logprobs = true},
            .index = j, .on_event = collect, .user = &c, .submit_ms = bn_engine_now_ms()};
    }
    /* two submissions so the second batch joins while the first decodes */
    CHECK_OK(bn_engine_submit(e, jobs, 4, &err), &err);
    usleep(2000);
    CHECK_OK(bn_engine_submit(e, jobs + 4, N_JOBS - 4, &err), &err);
    wait_done(&c, N_JOBS);
    CHECK(c.done == N_JOBS);
    for (int j = 0; j < N_JOBS; j++) {
        int32_t ref[N_GEN];
        int n = greedy_reference(m, prompts[j], n_prompt[j], N_GEN, ref);
        CHECKF(n == N_GEN && c.n_tokens[j] == N_GEN && !memcmp(ref, c.tokens[j], sizeof ref),
               "job %d: batched tokens differ from the one-sequence greedy loop", j);
        CHECK(c.finish[j] == BN_FINISH_LENGTH);
    }
    /* a full queue refuses the whole submission */
    bn_engine_job_config many[20];
    for (int j = 0; j < 20; j++) many[j] = jobs[0];
    CHECK(bn_engine_submit(e, many, 20, &err) == BN_ERR_RANGE);
    /* a bias token past the vocabulary is a bad job (400), not a full queue (503) */
    bn_logit_bias past = {(int32_t)bn_model_get_config(m)->n_vocab, 1.0f};
    bn_engine_job_config bad_job = jobs[0];
    bad_job.gen.sampling.logit_bias = &past;
    bad_job.gen.sampling.n_logit_bias = 1;
    CHECK(bn_engine_submit(e, &bad_job, 1, &err) == BN_ERR_INVALID && strstr(err.message, "logit_bias"));

    /* cancellation: long jobs, cancelled, free every slot */
    collected c2;
    memset(&c2, 0, sizeof c2);
    pthread_mutex_init(&c2.mu, NULL);
    atomic_bool cancel = false;
    for (int j = 0; j < 5; j++) {
        many[j] = jobs[j];
        many[j].gen.max_tokens = 200;
        many[j].cancel = &cancel;
        many[j].user = &c2;
    }
    /* the first token of any job raises the flag, so no job can run to its 200 tokens first
     * (a sleep before cancelling was a race once decoding got fast enough) */
    c2.cancel_on_token = &cancel;
    CHECK_OK(bn_engine_submit(e, many, 5, &err), &err);
    wait_done(&c2, 5);
    CHECK(c2.done == 5);
    for (int j = 0; j < 5; j++) CHECK(c2.finish[j] == BN_FINISH_CANCELLED);
    bn_engine_stats st;
    bn_engine_get_stats(e, &st);
    CHECK(st.busy_slots == 0 && st.queued == 0 && st.n_slots == 3);

    /* grammar on random weights, with sampling: always valid JSON within max_tokens */
    bn_grammar *g = NULL;
    CHECK_OK(bn_json_schema_grammar(&g, test_schema, &err), &err);
    collected c3;
    memset(&c3, 0, sizeof c3);
    pthread_mutex_init(&c3.mu, NULL);
    for (int j = 0; j < 6; j++) {
        many[j] = jobs[j];
        many[j].user = &c3;
        many[j].gen.grammar = g;
        many[j].gen.max_tokens = 60 + 10 * j;
        many[j].gen.sampling = bn_sampler_params_default();
        many[j].gen.sampling.seed = (uint64_t)j;
        many[j].gen.sampling.temperature = 1.5f;
    }
    CHECK_OK(bn_engine_submit(e, many, 6, &err), &err);
    wait_done(&c3, 6);
    for (int j = 0; j < 6; j++) {
        json_t *v = json_loadb(c3.text[j], c3.text_len[j], 0, NULL);
        CHECKF(v && satisfies(v) && c3.finish[j] == BN_FINISH_GRAMMAR, "grammar job %d: %.*s", j,
               (int)c3.text_len[j], c3.text[j]);
        json_decref(v);
    }
    bn_engine_free(e);
    bn_grammar_free(g);
out:
    bn_tokenizer_free(tok);
    bn_model_free(m);
    free(path);
    free(dir);
}

/* Submits one job (index 0) and waits for it; c is reset first. */
static void run_one(bn_engine *e, collected *c, const int32_t *prompt, int n, bn_gen_config gen) {
    pthread_mutex_lock(&c->mu);
    c->done = 0;
    c->n_tokens[0] = 0;
    c->text_len[0] = 0;
    pthread_mutex_unlock(&c->mu);
    gen.want_logprobs = true; /* the collector reads tokens from the samples */
    bn_engine_job_config job = {.prompt = prompt, .n_prompt = (size_t)n, .gen = gen, .index = 0,
                                .on_event = collect, .user = c, .submit_ms = bn_engine_now_ms()};
    bn_error err;
    CHECK_OK(bn_engine_submit(e, &job, 1, &err), &err);
    wait_done(c, 1);
}

/* Prompt cache: reuse from the idle slot and from the host store, outputs identical to cold runs
 * (greedy and seeded); top_k 1 is greedy whatever the seed; context shift and its absence. */
static void test_prompt_cache(void) {
    char *dir, *path;
    bn_model *m;
    bn_tokenizer *tok;
    bn_error err;
    tiny_model("server_cache", &dir, &path, &m, &tok);
    bn_engine *warm = NULL, *cold = NULL, *shift = NULL, *noshift = NULL;
    const bn_engine_options wo = {.n_slots = 1, .n_ctx = 256, .max_queue = 4, .prefill_chunk = 7, .cache_ram_mb = 16};
    const bn_engine_options co = {.n_slots = 1, .n_ctx = 256, .max_queue = 4, .prefill_chunk = 64};
    if (m && tok) CHECK_OK(bn_engine_create(&warm, m, tok, &wo, NULL, &err), &err);
    if (m && tok) CHECK_OK(bn_engine_create(&cold, m, tok, &co, NULL, &err), &err);
    collected c;
    memset(&c, 0, sizeof c);
    pthread_mutex_init(&c.mu, NULL);
    if (!warm || !cold) goto out;
    enum { N1 = 30, N2 = 20, G = 10 };
    int32_t p1[N1], p2[N2], longer[N1 + G + 3];
    bn_test_rng rng;
    bn_test_rng_seed(&rng, 11);
    for (int i = 0; i < N1; i++) p1[i] = (int32_t)bn_test_rng_range(&rng, 0, 258);
    for (int i = 0; i < N2; i++) p2[i] = (int32_t)bn_test_rng_range(&rng, 0, 258);
    const bn_gen_config greedy = {.sampling = bn_sampler_params_greedy(), .max_tokens = G, .ignore_eog = true};
    int32_t t1[G], ref[G];
    run_one(warm, &c, p1, N1, greedy);
    CHECK(c.n_cached[0] == 0 && c.n_tokens[0] == G);
    memcpy(t1, c.tokens[0], sizeof t1);
    CHECK(greedy_reference(m, p1, N1, G, ref) == G && !memcmp(ref, t1, sizeof ref));
    /* the same prompt again: all but its last token come from the slot */
    run_one(warm, &c, p1, N1, greedy);
    CHECKF(c.n_cached[0] == N1 - 1, "repeat: %d cached", c.n_cached[0]);
    CHECK(c.n_tokens[0] == G && !memcmp(c.tokens[0], t1, sizeof t1));
    /* a continuation: the prompt and the G - 1 fed answer tokens are reused */
    memcpy(longer, p1, sizeof p1);
    memcpy(longer + N1, t1, sizeof t1);
    for (int i = 0; i < 3; i++) longer[N1 + G + i] = 40 + i;
    run_one(warm, &c, longer, N1 + G + 3, greedy);
    CHECKF(c.n_cached[0] == N1 + G - 1, "continuation: %d cached, want %d", c.n_cached[0], N1 + G - 1);
    CHECK(greedy_reference(m, longer, N1 + G + 3, G, ref) == G && !memcmp(ref, c.tokens[0], sizeof ref));
    /* an unrelated prompt moves the slot's cache to the store; p1 then comes back from there */
    run_one(warm, &c, p2, N2, greedy);
    CHECK(c.n_cached[0] == 0);
    run_one(warm, &c, p1, N1, greedy);
    CHECKF(c.n_cached[0] == N1 - 1, "from the store: %d cached", c.n_cached[0]);
    CHECK(c.n_tokens[0] == G && !memcmp(c.tokens[0], t1, sizeof t1));
    bn_engine_stats st;
    bn_engine_get_stats(warm, &st);
    CHECKF(st.store_hits == 1 && st.cache_hits == 3 && st.cache_lookups == 5 &&
           st.cache_reused_tokens == 2 * (N1 - 1) + (N1 + G - 1) &&
           st.store_entries >= 1 && st.store_bytes > 0,
           "stats: %lld hits (%lld from the store) of %lld, %lld tokens, %lld entries", (long long)st.cache_hits,
           (long long)st.store_hits, (long long)st.cache_lookups, (long long)st.cache_reused_tokens,
           (long long)st.store_entries);
    /* seeded sampling: a warm run draws exactly what a cold engine draws */
    bn_gen_config seeded = {.sampling = bn_sampler_params_default(), .max_tokens = G, .ignore_eog = true};
    seeded.sampling.seed = 5;
    seeded.sampling.temperature = 1.0f;
    seeded.sampling.top_k = 0;
    seeded.sampling.min_p = 0.0f;
    seeded.sampling.repetition_penalty = 1.1f;
    seeded.sampling.frequency_penalty = 0.3f;
    int32_t s_cold[G];
    run_one(cold, &c, longer, N1 + G + 3, seeded);
    CHECK(c.n_cached[0] == 0 && c.n_tokens[0] == G);
    memcpy(s_cold, c.tokens[0], sizeof s_cold);
    run_one(warm, &c, longer, N1 + G + 3, seeded);
    CHECKF(c.n_cached[0] > 0 && c.n_tokens[0] == G && !memcmp(c.tokens[0], s_cold, sizeof s_cold),
           "seeded warm run (%d cached) differs from the cold one", c.n_cached[0]);
    /* top_k 1 at temperature 1: greedy, whatever the seed */
    for (uint64_t seed = 1; seed <= 3; seed++) {
        bn_gen_config k1 = {.sampling = bn_sampler_params_default(), .max_tokens = G, .ignore_eog = true};
        k1.sampling.seed = seed;
        k1.sampling.temperature = 1.0f;
        k1.sampling.top_k = 1;
        run_one(cold, &c, p1, N1, k1);
        CHECKF(c.n_tokens[0] == G && !memcmp(c.tokens[0], t1, sizeof t1), "top_k 1, seed %llu: not greedy",
               (unsigned long long)seed);
    }
    /* context shift: a 32-token slot generates 60 tokens; without it the slot ends the job */
    const bn_engine_options so = {.n_slots = 1, .n_ctx = 32, .max_queue = 4, .context_shift = true, .keep = 4};
    const bn_engine_options no = {.n_slots = 1, .n_ctx = 32, .max_queue = 4};
    CHECK_OK(bn_engine_create(&shift, m, tok, &so, NULL, &err), &err);
    CHECK_OK(bn_engine_create(&noshift, m, tok, &no, NULL, &err), &err);
    if (shift && noshift) {
        bn_gen_config long_gen = greedy;
        long_gen.max_tokens = 60;
        run_one(shift, &c, p2, 10, long_gen);
        bn_engine_get_stats(shift, &st);
        CHECKF(c.finish[0] == BN_FINISH_LENGTH && st.context_shifts >= 2,
               "shift: finish %d after %lld shifts", c.finish[0], (long long)st.context_shifts);
        /* a shifted slot is never reused: the same prompt is prefilled again */
        run_one(shift, &c, p2, 10, greedy);
        CHECK(c.n_cached[0] == 0);
        run_one(noshift, &c, p2, 10, long_gen);
        CHECKF(c.finish[0] == BN_FINISH_CONTEXT && c.n_tokens[0] == 32 - 10 + 1,
               "no shift: finish %d after %d tokens", c.finish[0], c.n_tokens[0]);
    }
out:
    bn_engine_free(warm);
    bn_engine_free(cold);
    bn_engine_free(shift);
    bn_engine_free(noshift);
    pthread_mutex_destroy(&c.mu);
    bn_tokenizer_free(tok);
    bn_model_free(m);
    free(path);
    free(dir);
}

/* One HTTP/1.0 GET on a fresh connection; returns the whole response (caller frees) or NULL. */
static char *http_get(int port, const char *path) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0) close(fd);
        return NULL;
    }
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return NULL;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    ssize_t got;
    while (buf && len + 1 < cap && (got = read(fd, buf + len, cap - 1 - len)) > 0) len += (size_t)got;
    close(fd);
    if (buf) buf[len] = '\0';
    return buf;
}

/* A non-streaming wait turns the queued engine events into text as they come, so the next wait
 * blocks: with events left queued it returned at once, and the connection's thread spun on a
 * core for the whole generation (the server's batched throughput fell below one sequence's). */
static void test_completion_wait(void) {
    char *dir, *path;
    bn_model *m;
    bn_tokenizer *tok;
    bn_error err;
    if (!tiny_model("server_completion", &dir, &path, &m, &tok)) goto out;
    const bn_chat_format *fmt = bn_chat_format_find("chatml", &err);
    const bn_plan_context ctx = {.tok = tok, .format = fmt, .model_id = "tiny", .n_ctx = 64};
    bn_api_request r;
    bn_api_error e;
    bn_plan p;
    const char *body = "{\"model\":\"tiny\",\"prompt\":\"ab\",\"max_tokens\":8}";
    CHECK(bn_server_parse_completion_request(&r, &e, body, strlen(body), &limits) == BN_OK);
    CHECK(bn_plan_request(&p, &ctx, &r, &e) == BN_OK);
    const bn_completion_setup setup = {.tok = tok, .model_id = "tiny", .fingerprint = "fp", .req = &r, .plan = &p};
    bn_completion *c = bn_completion_create(&setup);
    CHECK(c != NULL);
    if (c) {
        bn_completion_expect_jobs(c, 1);
        for (int i = 0; i < 3; i++) {
            const bn_engine_event ev = {.kind = BN_ENGINE_TOKEN, .index = 0, .text = "x", .text_len = 1,
                                        .token_in_output = true};
            bn_completion_on_event(c, &ev);
        }
        CHECKF(bn_completion_queued_events(c) == 3, "%zu queued", bn_completion_queued_events(c));
        CHECK(!bn_completion_wait(c, 0));
        CHECKF(bn_completion_queued_events(c) == 0, "%zu still queued after a wait", bn_completion_queued_events(c));
        const bn_engine_event fin = {.kind = BN_ENGINE_FINISH, .index = 0, .finish = BN_FINISH_LENGTH, .n_prompt = 1,
                                     .n_generated = 3};
        bn_completion_on_event(c, &fin);
        CHECK(bn_completion_wait(c, 0));
        char *text = bn_completion_body(c, &e);
        CHECKF(text && strstr(text, "\"text\":\"xxx\""), "%s", text ? text : "(null)");
        free(text);
        bn_completion_unref(c);
    }
    bn_plan_free(&p);
    bn_api_request_free(&r);
out:
    bn_tokenizer_free(tok);
    bn_model_free(m);
    free(path);
    free(dir);
}

/* The routing key: every turn of a conversation shares it, another conversation does not;
 * completions share it over their first 512 bytes. */
static void test_routing_key(void) {
    const char *turn1 = "{\"model\":\"t\",\"messages\":[{\"role\":\"system\",\"content\":\"S\"},"
                        "{\"role\":\"user\",\"content\":\"first\"}]}";
    const char *turn2 = "{\"model\":\"t\",\"messages\":[{\"role\":\"system\",\"content\":\"S\"},"
                        "{\"role\":\"user\",\"content\":\"first\"},{\"role\":\"assistant\",\"content\":\"a\"},"
                        "{\"role\":\"user\",\"content\":\"second\"}]}";
    const char *other = "{\"model\":\"t\",\"messages\":[{\"role\":\"system\",\"content\":\"S\"},"
                        "{\"role\":\"user\",\"content\":\"firsT\"}]}";
    const char *bodies[3] = {turn1, turn2, other};
    char keys[3][BN_ROUTING_KEY_SIZE];
    for (int i = 0; i < 3; i++) {
        bn_api_request r;
        bn_api_error e;
        CHECK(bn_server_parse_chat_request(&r, &e, bodies[i], strlen(bodies[i]), &limits) == BN_OK);
        CHECK(bn_routing_key(&r, keys[i]) && strlen(keys[i]) == 16 && strspn(keys[i], "0123456789abcdef") == 16);
        bn_api_request_free(&r);
    }
    CHECKF(!strcmp(keys[0], keys[1]), "turns differ: %s %s", keys[0], keys[1]);
    CHECKF(strcmp(keys[0], keys[2]) != 0, "conversations share %s", keys[0]);
    /* completions: equal first 512 bytes, equal keys; a difference inside them, another key */
    char a[1200], b[1200], c[1200];
    char prefix[600];
    memset(prefix, 'p', 512);
    prefix[512] = '\0';
    snprintf(a, sizeof a, "{\"model\":\"t\",\"prompt\":\"%s tail one\"}", prefix);
    snprintf(b, sizeof b, "{\"model\":\"t\",\"prompt\":\"%s and a different tail\"}", prefix);
    prefix[100] = 'q';
    snprintf(c, sizeof c, "{\"model\":\"t\",\"prompt\":\"%s tail one\"}", prefix);
    const char *prompts[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        bn_api_request r;
        bn_api_error e;
        CHECK(bn_server_parse_completion_request(&r, &e, prompts[i], strlen(prompts[i]), &limits) == BN_OK);
        CHECK(bn_routing_key(&r, keys[i]));
        bn_api_request_free(&r);
    }
    CHECK(!strcmp(keys[0], keys[1]) && strcmp(keys[0], keys[2]) != 0);
}

/* /health is 503 while the model loads (the server listens before loading), 200 after. */
static void test_server_loading(void) {
    char *dir = bn_test_tmpdir("server_loading");
    char *path = bn_test_path(dir, "tiny.gguf");
    bn_error err;
    bn_synth_options o;
    CHECK_OK(bn_synth_preset(&o, "tiny", &err), &err);
    CHECK_OK(bn_synth_write(path, &o, &err), &err);
    bn_server_config cfg = {.model_path = path, .port = 0, .parallel = 2, .n_ctx = 128, .n_threads = 1, .queue = 4};
    bn_server *s = NULL;
    CHECK_OK(bn_server_start(&s, &cfg, &err), &err);
    if (s) {
        CHECK(!strcmp(bn_server_model_id(s), "tiny") && bn_server_port(s) > 0);
        char *r = http_get(bn_server_port(s), "/health");
        CHECKF(r && strstr(r, " 503 ") && strstr(r, "\"loading\"") && strstr(r, "Retry-After"), "%s", r ? r : "(none)");
        free(r);
        r = http_get(bn_server_port(s), "/live"); /* liveness: the process answers, loading or not */
        CHECKF(r && strstr(r, " 200 ") && strstr(r, "\"alive\""), "%s", r ? r : "(none)");
        free(r);
        r = http_get(bn_server_port(s), "/ready");
        CHECKF(r && strstr(r, " 503 ") && strstr(r, "\"reason\":\"loading\""), "%s", r ? r : "(none)");
        free(r);
        r = http_get(bn_server_port(s), "/v1/models");
        CHECKF(r && strstr(r, " 503 ") && strstr(r, "model_loading"), "%s", r ? r : "(none)");
        free(r);
        CHECK_OK(bn_server_load_model(s, &err), &err);
        r = http_get(bn_server_port(s), "/health");
        CHECKF(r && strstr(r, " 200 ") && strstr(r, "{\"status\":\"ok\"}"), "%s", r ? r : "(none)");
        free(r);
        r = http_get(bn_server_port(s), "/ready");
        CHECKF(r && strstr(r, " 200 ") && strstr(r, "\"status\":\"ready\"") && strstr(r, "\"ready_queue_max\":4"), "%s",
               r ? r : "(none)");
        free(r);
        bn_server_stop(s, 1);
        CHECK(http_get(bn_server_port(s), "/health") == NULL); /* no longer listening */
        bn_server_free(s);
    }
    free(path);
    free(dir);
}

/* Request planning: what a request becomes before the engine sees it. */
static void test_planning(void) {
    char *dir, *path;
    bn_model *m;
    bn_tokenizer *tok;
    bn_error err;
    if (!tiny_model("server_plan", &dir, &path, &m, &tok)) goto out;
    const bn_chat_format *fmt = bn_chat_format_find("chatml", &err);
    CHECK(fmt != NULL);
    const bn_plan_context ctx = {.tok = tok, .format = fmt, .model_id = "tiny", .n_ctx = 64};
    bn_api_request r;
    bn_api_error e;
    bn_plan p;
    /* two prompts x n=3: six choices; max_tokens capped by the room the longest prompt leaves */
    const char *two = "{\"model\":\"tiny\",\"prompt\":[\"ab\",[5,6,7,8]],\"n\":3,\"max_tokens\":1000,\"stop\":[\"x\"]}";
    CHECK(bn_server_parse_completion_request(&r, &e, two, strlen(two), &limits) == BN_OK);
    CHECK(bn_plan_request(&p, &ctx, &r, &e) == BN_OK);
    CHECKF(p.n_choices == 6 && p.n_prompts == 2 && p.ids[1].n == 4, "choices %d prompts %zu", p.n_choices, p.n_prompts);
    CHECKF(p.max_tokens == 64 - 4 + 1, "max_tokens %d", p.max_tokens);
    CHECKF(p.prompt_tokens == (int)(p.ids[0].n + p.ids[1].n), "prompt tokens %d", p.prompt_tokens);
    CHECK(p.reserved_tokens == (double)p.prompt_tokens + 6.0 * p.max_tokens);
    CHECK(p.n_stops == 1 && !strcmp(p.stops[0], "x") && p.grammar == NULL && p.tools == BN_TOOLS_OFF);
    bn_engine_job_config job = bn_plan_job(&p, &r, 4, 64); /* choice 4: prompt 1 */
    CHECK(job.prompt == p.ids[1].ids && job.n_prompt == 4 && job.index == 4 && job.gen.max_tokens == p.max_tokens);
    bn_plan_free(&p);
    bn_api_request_free(&r);
    /* chat: the template's stop strings follow the request's; response_format gives a grammar */
    const char *chat = "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                       "\"response_format\":{\"type\":\"json_object\"},\"max_tokens\":5}";
    CHECK(bn_server_parse_chat_request(&r, &e, chat, strlen(chat), &limits) == BN_OK);
    CHECK(bn_plan_request(&p, &ctx, &r, &e) == BN_OK);
    CHECK(p.chat && p.n_choices == 1 && p.max_tokens == 5 && p.grammar != NULL && p.ids[0].n > 2);
    size_t n_fmt = 0;
    while (fmt->stop_strings && fmt->stop_strings[n_fmt]) n_fmt++;
    CHECKF(p.n_stops == n_fmt, "stops %zu, format has %zu", p.n_stops, n_fmt);
    bn_plan_free(&p);
    bn_api_request_free(&r);
    /* refusals: another model (404), a prompt longer than the context (400, the field named) */
    const char *other = "{\"model\":\"big\",\"prompt\":\"x\"}";
    CHECK(bn_server_parse_completion_request(&r, &e, other, strlen(other), &limits) == BN_OK);
    CHECK(bn_plan_request(&p, &ctx, &r, &e) != BN_OK && e.status == 404 && !strcmp(e.code, "model_not_found"));
    bn_plan_free(&p);
    bn_api_request_free(&r);
    char longp[512];
    int n = snprintf(longp, sizeof longp, "{\"model\":\"tiny\",\"prompt\":[");
    for (int i = 0; i < 65; i++) n += snprintf(longp + n, sizeof longp - (size_t)n, "%s%d", i ? "," : "", 5);
    snprintf(longp + n, sizeof longp - (size_t)n, "]}");
    CHECK(bn_server_parse_completion_request(&r, &e, longp, strlen(longp), &limits) == BN_OK);
    CHECK(bn_plan_request(&p, &ctx, &r, &e) != BN_OK && e.status == 400 && !strcmp(e.code, "context_length_exceeded") &&
          !strcmp(e.param, "prompt"));
    bn_plan_free(&p);
    bn_api_request_free(&r);
out:
    bn_tokenizer_free(tok);
    bn_model_free(m);
    free(path);
    free(dir);
}

int main(void) {
    test_parse_valid();
    test_parse_invalid();
    test_grammar();
    test_engine();
    test_prompt_cache();
    test_planning();
    test_completion_wait();
    test_routing_key();
    test_server_loading();
    return bn_test_finish("test_server_units");
}
