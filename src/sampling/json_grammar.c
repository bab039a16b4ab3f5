/*
 * json_grammar.c: JSON Schema -> node tree, and the byte-level pushdown machine that checks
 * generated output against it (see json_grammar.h).
 *
 * Frames: ROOT (bottom), VALUE (a value of a node, not started), OBJECT, KEY (a property name of a
 * schema object, matched against the remaining names), STRING, ARRAY, NUMBER, LITERAL (true,
 * false, null, enum values as compact JSON text) and SWITCH (a tool call: one of several literal
 * prefixes, then the arguments value of the chosen tool, then '}'). A frame whose value ends pops
 * itself and moves its parent on (value_done); numbers and literals that may still grow end when a
 * byte arrives that they cannot take, which is then fed to the parent.
 */
#include "sampling/json_grammar.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

enum {
    T_OBJECT = 1, T_ARRAY = 2, T_STRING = 4, T_NUMBER = 8, T_INTEGER = 16, T_BOOLEAN = 32,
    T_NULL = 64, T_ANY = 127
};

typedef struct node {
    unsigned types;
    bool is_switch;      /* tool call: enum_text are the literal prefixes, prop_node the arguments */
    int n_props;         /* 0 with T_OBJECT: any keys, any values */
    char **keys;         /* JSON-escaped property names, without quotes */
    size_t *key_lens;
    int *prop_node;
    uint64_t required;
    int items;           /* node of array items */
    int n_enum;
    char **enum_text;    /* compact JSON texts */
    size_t *enum_lens;
} node;

struct bn_json_grammar {
    node *nodes;
    int n_nodes, cap_nodes;
    int root;
    size_t max_growth;
};

enum { NODE_ANY = 0 };
enum { FR_ROOT, FR_VALUE, FR_OBJECT, FR_KEY, FR_STRING, FR_ARRAY, FR_NUMBER, FR_LITERAL, FR_SWITCH };
enum { O_START, O_EXPECT_KEY, O_EXPECT_COLON, O_EXPECT_VALUE, O_AFTER_VALUE };
enum { A_START, A_EXPECT_VALUE, A_AFTER_VALUE };
enum { N_START, N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_EXP, N_EXP_SIGN, N_EXP_DIGITS };
enum { S_LIT, S_VALUE, S_CLOSE };
enum { MAX_WS = 4, MAX_INT_DIGITS = 15, MAX_FRAC_DIGITS = 15, MAX_EXP_DIGITS = 2 };
enum { MAX_SCHEMA_DEPTH = BN_JSON_MAX_DEPTH - 4 };

static const char *const bool_texts[] = {"true", "false"};
static const size_t bool_lens[] = {4, 5};
static const char *const null_texts[] = {"null"};
static const size_t null_lens[] = {4};

/* ---------------------------------------------------------------- schema compilation */

static void node_free(node *n) {
    for (int i = 0; i < n->n_props; i++) free(n->keys[i]);
    free(n->keys);
    free(n->key_lens);
    free(n->prop_node);
    for (int i = 0; i < n->n_enum; i++) free(n->enum_text[i]);
    free(n->enum_text);
    free(n->enum_lens);
}

void bn_json_grammar_free(bn_json_grammar *g) {
    if (!g) return;
    for (int i = 0; i < g->n_nodes; i++) node_free(&g->nodes[i]);
    free(g->nodes);
    free(g);
}

/* Appends a zeroed node; returns its index or -1 on out-of-memory. */
static int node_new(bn_json_grammar *g) {
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? g->cap_nodes * 2 : 16;
        if (cap > 1 << 16) return -1;
        node *nodes = realloc(g->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes) return -1;
        g->nodes = nodes;
        g->cap_nodes = cap;
    }
    memset(&g->nodes[g->n_nodes], 0, sizeof(node));
    g->nodes[g->n_nodes].items = NODE_ANY;
    return g->n_nodes++;
}

/* Compact JSON text of v (strings without their quotes when strip_quotes); caller frees. */
static char *dump_compact(const json_t *v, bool strip_quotes, size_t *len) {
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text) return NULL;
    size_t n = strlen(text);
    if (strip_quotes && n >= 2) {
        memmove(text, text + 1, n - 2);
        n -= 2;
        text[n] = '\0';
    }
    *len = n;
    return text;
}

static unsigned type_bit(const char *name) {
    static const struct { const char *name; unsigned bit; } table[] = {
        {"object", T_OBJECT}, {"array", T_ARRAY}, {"string", T_STRING}, {"number", T_NUMBER},
        {"integer", T_INTEGER}, {"boolean", T_BOOLEAN}, {"null", T_NULL}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (!strcmp(name, table[i].name)) return table[i].bit;
    return 0;
}

static bn_status set_enum(bn_json_grammar *g, int idx, const json_t *values, const char *path,
                          bn_error *err) {
    size_t n = json_array_size(values);
    if (n == 0 || n > BN_JSON_MAX_CHOICES)
        return bn_error_set(err, BN_ERR_INVALID, "%s.enum: needs 1 to %d values", path, BN_JSON_MAX_CHOICES);
    node *nd = &g->nodes[idx];
    nd->enum_text = calloc(n, sizeof *nd->enum_text);
    nd->enum_lens = calloc(n, sizeof *nd->enum_lens);
    if (!nd->enum_text || !nd->enum_lens) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        nd->enum_text[i] = dump_compact(json_array_get(values, i), false, &nd->enum_lens[i]);
        if (!nd->enum_text[i]) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
        nd->n_enum = (int)i + 1;
    }
    return BN_OK;
}

static bn_status compile(bn_json_grammar *g, int *out, const json_t *schema, const char *path,
                         int depth, bn_error *err);

static bn_status compile_properties(bn_json_grammar *g, int idx, const json_t *schema,
                                    const char *path, int depth, bn_error *err) {
    const json_t *props = json_object_get(schema, "properties");
    const json_t *required = json_object_get(schema, "required");
    if (props && !json_is_object(props))
        return bn_error_set(err, BN_ERR_INVALID, "%s.properties: must be an object", path);
    if (required && !json_is_array(required))
        return bn_error_set(err, BN_ERR_INVALID, "%s.required: must be an array", path);
    size_t n = props ? json_object_size(props) : 0;
    if (n > BN_JSON_MAX_CHOICES)
        return bn_error_set(err, BN_ERR_INVALID, "%s.properties: more than %d", path, BN_JSON_MAX_CHOICES);
    if (n == 0) {
        if (json_array_size(required) > 0)
            return bn_error_set(err, BN_ERR_INVALID, "%s.required: names no property", path);
        return BN_OK;
    }
    node *nd = &g->nodes[idx];
    nd->keys = calloc(n, sizeof *nd->keys);
    nd->key_lens = calloc(n, sizeof *nd->key_lens);
    nd->prop_node = calloc(n, sizeof *nd->prop_node);
    if (!nd->keys || !nd->key_lens || !nd->prop_node) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    const char *key;
    const json_t *value;
    int i = 0;
    json_object_foreach((json_t *)props, key, value) {
        json_t *name = json_string(key);
        size_t len = 0;
        char *text = name ? dump_compact(name, true, &len) : NULL;
        json_decref(name);
        if (!text) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
        g->nodes[idx].keys[i] = text;
        g->nodes[idx].key_lens[i] = len;
        g->nodes[idx].n_props = i + 1;
        char sub[256];
        snprintf(sub, sizeof sub, "%s.properties.%.64s", path, key);
        int child;
        bn_status st = compile(g, &child, value, sub, depth + 1, err);
        if (st) return st;
        g->nodes[idx].prop_node[i] = child; /* g->nodes may have moved */
        i++;
    }
    for (size_t r = 0; r < json_array_size(required); r++) {
        const char *name = json_string_value(json_array_get(required, r));
        if (!name) return bn_error_set(err, BN_ERR_INVALID, "%s.required[%zu]: must be a string", path, r);
        int found = -1;
        json_object_foreach((json_t *)props, key, value) {
            found++;
            if (!strcmp(key, name)) break;
        }
        if (!json_object_get(props, name))
            return bn_error_set(err, BN_ERR_INVALID, "%s.required: \"%.64s\" is not a property", path, name);
        g->nodes[idx].required |= 1ull << found;
    }
    return BN_OK;
}

static bn_status compile(bn_json_grammar *g, int *out, const json_t *schema, const char *path,
                         int depth, bn_error *err) {
    if (depth > MAX_SCHEMA_DEPTH)
        return bn_error_set(err, BN_ERR_INVALID, "%s: nested deeper than %d levels", path, MAX_SCHEMA_DEPTH);
    if (json_is_true(schema)) {
        *out = NODE_ANY;
        return BN_OK;
    }
    if (!json_is_object(schema)) return bn_error_set(err, BN_ERR_INVALID, "%s: a schema must be an object", path);
    static const char *const unsupported[] = {"$ref", "anyOf", "oneOf", "allOf", "not", "pattern",
                                              "patternProperties", "minLength", "maxLength", "minimum",
                                              "maximum", "exclusiveMinimum", "exclusiveMaximum",
                                              "minItems", "maxItems", "uniqueItems", "multipleOf",
                                              "if", "then", "else", "prefixItems", "contains"};
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
        if (json_object_get(schema, unsupported[i]))
            return bn_error_set(err, BN_ERR_UNSUPPORTED, "%s.%s: keyword not supported", path, unsupported[i]);
    int idx = node_new(g);
    if (idx < 0) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    const json_t *type = json_object_get(schema, "type");
    unsigned types = 0;
    if (!type) {
        types = json_object_get(schema, "properties") ? T_OBJECT : T_ANY;
    } else if (json_is_string(type)) {
        types = type_bit(json_string_value(type));
        if (!types) return bn_error_set(err, BN_ERR_INVALID, "%s.type: unknown type \"%.32s\"", path, json_string_value(type));
    } else if (json_is_array(type) && json_array_size(type) > 0) {
        for (size_t i = 0; i < json_array_size(type); i++) {
            const char *name = json_string_value(json_array_get(type, i));
            unsigned bit = name ? type_bit(name) : 0;
            if (!bit) return bn_error_set(err, BN_ERR_INVALID, "%s.type[%zu]: unknown type", path, i);
            types |= bit;
        }
    } else {
        return bn_error_set(err, BN_ERR_INVALID, "%s.type: must be a string or an array of strings", path);
    }
    g->nodes[idx].types = types;
    const json_t *values = json_object_get(schema, "enum");
    json_t *single = NULL;
    if (!values && json_object_get(schema, "const")) {
        single = json_array();
        if (!single || json_array_append(single, json_object_get(schema, "const")))
            return json_decref(single), bn_error_set(err, BN_ERR_NOMEM, "out of memory");
        values = single;
    }
    if (values) {
        bn_status st = json_is_array(values) ? set_enum(g, idx, values, path, err)
                                             : bn_error_set(err, BN_ERR_INVALID, "%s.enum: must be an array", path);
        json_decref(single);
        if (st) return st;
    }
    if (types & T_OBJECT) {
        bn_status st = compile_properties(g, idx, schema, path, depth, err);
        if (st) return st;
    }
    const json_t *items = json_object_get(schema, "items");
    if ((types & T_ARRAY) && items) {
        char sub[256];
        snprintf(sub, sizeof sub, "%s.items", path);
        int child;
        bn_status st = compile(g, &child, items, sub, depth + 1, err);
        if (st) return st;
        g->nodes[idx].items = child;
    }
    *out = idx;
    return BN_OK;
}

/* Shortest document length of a node, for the growth bound. */
static size_t min_len(const bn_json_grammar *g, int idx, int depth) {
    const node *n = &g->nodes[idx];
    if (depth > BN_JSON_MAX_DEPTH) return 0;
    if (n->is_switch) {
        size_t best = SIZE_MAX;
        for (int i = 0; i < n->n_enum; i++) {
            size_t l = n->enum_lens[i] + min_len(g, n->prop_node[i], depth + 1) + 1;
            if (l < best) best = l;
        }
        return best;
    }
    if (n->n_enum) {
        size_t best = SIZE_MAX;
        for (int i = 0; i < n->n_enum; i++)
            if (n->enum_lens[i] < best) best = n->enum_lens[i];
        return best;
    }
    if (n->types & (T_NUMBER | T_INTEGER)) return 1;
    if (n->types & T_STRING) return 2;
    if (n->types & T_ARRAY) return 2;
    if (n->types & T_OBJECT) {
        size_t total = 2;
        for (int i = 0; i < n->n_props; i++)
            if (n->required >> i & 1) total += n->key_lens[i] + 4 + min_len(g, n->prop_node[i], depth + 1);
        return total;
    }
    return 4; /* true, null */
}

static void finish_grammar(bn_json_grammar *g) {
    size_t worst = 0, longest_key = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        size_t l = min_len(g, i, 0);
        if (l > worst) worst = l;
        for (int k = 0; k < g->nodes[i].n_props; k++)
            if (g->nodes[i].key_lens[k] > longest_key) longest_key = g->nodes[i].key_lens[k];
    }
    g->max_growth = 2 * (worst + longest_key) + 16;
}

static bn_json_grammar *grammar_new(void) {
    bn_json_grammar *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    if (node_new(g) != NODE_ANY) {
        free(g);
        return NULL;
    }
    g->nodes[NODE_ANY].types = T_ANY;
    return g;
}

bn_status bn_json_grammar_from_schema(bn_json_grammar **out, const char *schema_json, bn_error *err) {
    *out = NULL;
    bn_json_grammar *g = grammar_new();
    if (!g) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    bn_status st = BN_OK;
    if (!schema_json) {
        int idx = node_new(g);
        if (idx < 0) st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
        else g->nodes[idx].types = T_OBJECT, g->root = idx;
    } else {
        json_error_t jerr;
        json_t *schema = json_loads(schema_json, 0, &jerr);
        if (!schema) st = bn_error_set(err, BN_ERR_INVALID, "schema: invalid JSON: %s", jerr.text);
        else st = compile(g, &g->root, schema, "schema", 0, err);
        json_decref(schema);
        if (!st) {
            node *root = &g->nodes[g->root];
            if (g->root == NODE_ANY || root->n_enum || !(root->types & T_OBJECT))
                st = bn_error_set(err, BN_ERR_INVALID, "schema: the root must be of type object");
            else
                root->types = T_OBJECT;
        }
    }
    if (st) {
        bn_json_grammar_free(g);
        return st;
    }
    finish_grammar(g);
    *out = g;
    return BN_OK;
}

bn_status bn_json_grammar_tool_call(bn_json_grammar **out, const char *const *names,
                                    const char *const *schemas, size_t n, bn_error *err) {
    *out = NULL;
    if (n == 0 || n > BN_JSON_MAX_CHOICES)
        return bn_error_set(err, BN_ERR_INVALID, "tools: needs 1 to %d functions", BN_JSON_MAX_CHOICES);
    bn_json_grammar *g = grammar_new();
    if (!g) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    bn_status st = BN_OK;
    int sw = node_new(g);
    if (sw < 0) st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    int *children = calloc(n, sizeof *children);
    if (!children) st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < n; i++) {
        /* arguments: a compiled schema (root object) or any object */
        char path[96];
        snprintf(path, sizeof path, "tools[%zu].function.parameters", i);
        if (schemas[i]) {
            json_error_t jerr;
            json_t *schema = json_loads(schemas[i], 0, &jerr);
            if (!schema) st = bn_error_set(err, BN_ERR_INVALID, "%s: invalid JSON: %s", path, jerr.text);
            else st = compile(g, &children[i], schema, path, 1, err);
            json_decref(schema);
            if (!st && (children[i] == NODE_ANY || !(g->nodes[children[i]].types & T_OBJECT) ||
                        g->nodes[children[i]].n_enum))
                st = bn_error_set(err, BN_ERR_INVALID, "%s: must be a schema of type object", path);
            if (!st) g->nodes[children[i]].types = T_OBJECT;
        } else {
            int idx = node_new(g);
            if (idx < 0) st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
            else g->nodes[idx].types = T_OBJECT, children[i] = idx;
        }
    }
    node *s = st ? NULL : &g->nodes[sw];
    if (s) {
        s->is_switch = true;
        s->types = T_OBJECT;
        s->enum_text = calloc(n, sizeof *s->enum_text);
        s->enum_lens = calloc(n, sizeof *s->enum_lens);
        s->prop_node = children;
        children = NULL;
        if (!s->enum_text || !s->enum_lens) st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
        for (size_t i = 0; !st && i < n; i++) {
            json_t *name = json_string(names[i]);
            size_t len = 0;
            char *esc = name ? dump_compact(name, false, &len) : NULL;
            json_decref(name);
            size_t cap = len + 64;
            char *text = esc ? malloc(cap) : NULL;
            if (!text) {
                free(esc);
                st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
                break;
            }
            snprintf(text, cap, "{\"name\":%s,\"arguments\":", esc);
            free(esc);
            s->enum_text[i] = text;
            s->enum_lens[i] = strlen(text);
            s->n_enum = (int)i + 1;
        }
        g->root = sw;
    }
    free(children);
    if (st) {
        bn_json_grammar_free(g);
        return st;
    }
    finish_grammar(g);
    *out = g;
    return BN_OK;
}

size_t bn_json_grammar_max_growth(const bn_json_grammar *g) { return g->max_growth; }

/* ---------------------------------------------------------------- the state machine */

void bn_json_state_init(bn_json_state *s, const bn_json_grammar *g) {
    memset(s, 0, sizeof *s);
    s->g = g;
    s->depth = 1;
    s->stack[0].kind = FR_ROOT;
}

bool bn_json_state_done(const bn_json_state *s) {
    return !s->dead && s->depth == 1 && s->stack[0].state == 1;
}

static bool push(bn_json_state *s, uint8_t kind, int node_idx) {
    if (s->depth >= BN_JSON_MAX_DEPTH) return false;
    bn_json_frame *f = &s->stack[s->depth++];
    memset(f, 0, sizeof *f);
    f->kind = kind;
    f->node = (int16_t)node_idx;
    return true;
}

/* The value on top ended: pop it and move the parent on. */
static void value_done(bn_json_state *s) {
    s->depth--;
    bn_json_frame *p = &s->stack[s->depth - 1];
    switch (p->kind) {
    case FR_ROOT: p->state = 1; break;
    case FR_OBJECT: p->state = O_AFTER_VALUE; break;
    case FR_ARRAY: p->state = A_AFTER_VALUE; break;
    case FR_SWITCH: p->state = S_CLOSE; break;
    default: break;
    }
    p->ws = 0;
}

static uint64_t all_bits(int n) { return n >= 64 ? ~0ull : (1ull << n) - 1; }

static void literal_texts(const bn_json_state *s, const bn_json_frame *f, const char *const **texts,
                          const size_t **lens, int *n) {
    if (f->aux == -1) {
        *texts = bool_texts, *lens = bool_lens, *n = 2;
    } else if (f->aux == -2) {
        *texts = null_texts, *lens = null_lens, *n = 1;
    } else {
        const node *nd = &s->g->nodes[f->aux];
        *texts = (const char *const *)nd->enum_text, *lens = nd->enum_lens, *n = nd->n_enum;
    }
}

static bool is_ws(uint8_t c) { return c == ' ' || c == '\n'; }

static bool number_accepting(int st) {
    return st == N_ZERO || st == N_INT || st == N_FRAC || st == N_EXP_DIGITS;
}

/* Starts a value of node `idx` in the VALUE frame on top with its first byte c. */
static bool start_value(bn_json_state *s, uint8_t c, bool *refeed) {
    bn_json_frame *f = &s->stack[s->depth - 1];
    const node *n = &s->g->nodes[f->node];
    int idx = f->node;
    *refeed = false;
    if (n->is_switch) {
        f->kind = FR_SWITCH, f->state = S_LIT, f->mask = all_bits(n->n_enum), f->pos = 0;
        *refeed = true;
        return true;
    }
    if (n->n_enum) {
        f->kind = FR_LITERAL, f->aux = idx, f->mask = all_bits(n->n_enum), f->pos = 0;
        *refeed = true;
        return true;
    }
    if (c == '{' && (n->types & T_OBJECT)) {
        if (s->depth >= BN_JSON_MAX_DEPTH - 1) return false;
        f->kind = FR_OBJECT, f->state = O_START, f->mask = 0;
        return true;
    }
    if (c == '[' && (n->types & T_ARRAY)) {
        if (s->depth >= BN_JSON_MAX_DEPTH - 1) return false;
        f->kind = FR_ARRAY, f->state = A_START;
        return true;
    }
    if (c == '"' && (n->types & T_STRING)) {
        f->kind = FR_STRING, f->aux = 0;
        return true;
    }
    if ((c == '-' || (c >= '0' && c <= '9')) && (n->types & (T_NUMBER | T_INTEGER))) {
        f->kind = FR_NUMBER, f->state = N_START, f->aux = !(n->types & T_NUMBER), f->pos = 0;
        *refeed = true;
        return true;
    }
    if ((c == 't' || c == 'f') && (n->types & T_BOOLEAN)) {
        f->kind = FR_LITERAL, f->aux = -1, f->mask = 3, f->pos = 0;
        *refeed = true;
        return true;
    }
    if (c == 'n' && (n->types & T_NULL)) {
        f->kind = FR_LITERAL, f->aux = -2, f->mask = 1, f->pos = 0;
        *refeed = true;
        return true;
    }
    return false;
}

/* Number grammar step; returns 1 consumed, 0 the number ended before c (refeed), -1 invalid. */
static int number_step(bn_json_frame *f, uint8_t c) {
    bool digit = c >= '0' && c <= '9';
    bool integer_only = f->aux;
    switch (f->state) {
    case N_START:
        if (c == '-') { f->state = N_MINUS; return 1; }
        /* fall through */
    case N_MINUS:
        if (!digit) return -1;
        f->state = c == '0' ? N_ZERO : N_INT;
        f->pos = 1;
        return 1;
    case N_INT:
        if (digit) {
            if (f->pos >= MAX_INT_DIGITS) return -1;
            f->pos++;
            return 1;
        }
        /* fall through */
    case N_ZERO:
        if (!integer_only && c == '.') { f->state = N_DOT; f->pos = 0; return 1; }
        if (!integer_only && (c == 'e' || c == 'E')) { f->state = N_EXP; f->pos = 0; return 1; }
        return 0;
    case N_DOT:
        if (!digit) return -1;
        f->state = N_FRAC, f->pos = 1;
        return 1;
    case N_FRAC:
        if (digit) {
            if (f->pos >= MAX_FRAC_DIGITS) return -1;
            f->pos++;
            return 1;
        }
        if (c == 'e' || c == 'E') { f->state = N_EXP; f->pos = 0; return 1; }
        return 0;
    case N_EXP:
        if (c == '+' || c == '-') { f->state = N_EXP_SIGN; return 1; }
        /* fall through */
    case N_EXP_SIGN:
        if (!digit) return -1;
        f->state = N_EXP_DIGITS, f->pos = 1;
        return 1;
    case N_EXP_DIGITS:
        if (digit) {
            if (f->pos >= MAX_EXP_DIGITS) return -1;
            f->pos++;
            return 1;
        }
        return 0;
    default: return -1;
    }
}

static bool string_step(bn_json_state *s, bn_json_frame *f, uint8_t c) {
    if (f->utf8_need) {
        if (c < f->utf8_lo || c > f->utf8_hi) return false;
        f->utf8_need--;
        f->utf8_lo = 0x80, f->utf8_hi = 0xBF;
        return true;
    }
    if (f->state == 1) { /* after a backslash */
        if (!strchr("\"\\/bfnrt", c) || c == 0) return false;
        f->state = 0;
        return true;
    }
    if (c == '"') {
        if (f->aux == 1) { /* a key of a free object */
            s->depth--;
            bn_json_frame *p = &s->stack[s->depth - 1];
            p->state = O_EXPECT_COLON, p->ws = 0;
        } else {
            value_done(s);
        }
        return true;
    }
    if (c == '\\') { f->state = 1; return true; }
    if (c < 0x20) return false;
    if (c < 0x80) return true;
    f->utf8_lo = 0x80, f->utf8_hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) f->utf8_need = 1;
    else if (c == 0xE0) f->utf8_need = 2, f->utf8_lo = 0xA0;
    else if (c == 0xED) f->utf8_need = 2, f->utf8_hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF) f->utf8_need = 2;
    else if (c == 0xF0) f->utf8_need = 3, f->utf8_lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) f->utf8_need = 3;
    else if (c == 0xF4) f->utf8_need = 3, f->utf8_hi = 0x8F;
    else return false;
    return true;
}

static bool start_key(bn_json_state *s, bn_json_frame *obj) {
    const node *n = &s->g->nodes[obj->node];
    if (n->n_props == 0) {
        if (!push(s, FR_STRING, NODE_ANY)) return false;
        s->stack[s->depth - 1].aux = 1;
        return true;
    }
    uint64_t cand = all_bits(n->n_props) & ~obj->mask;
    if (!cand || !push(s, FR_KEY, obj->node)) return false;
    s->stack[s->depth - 1].mask = cand;
    return true;
}

static bool step(bn_json_state *s, uint8_t c) {
    for (;;) {
        bn_json_frame *f = &s->stack[s->depth - 1];
        const node *n = &s->g->nodes[f->node];
        switch (f->kind) {
        case FR_ROOT:
            if (f->state != 0 || !push(s, FR_VALUE, s->g->root)) return false;
            continue;
        case FR_VALUE: {
            bool refeed;
            if (!start_value(s, c, &refeed)) return false;
            if (refeed) continue;
            return true;
        }
        case FR_NUMBER: {
            int r = number_step(f, c);
            if (r < 0) return false;
            if (r > 0) return true;
            if (!number_accepting(f->state)) return false;
            value_done(s);
            continue;
        }
        case FR_LITERAL: {
            const char *const *texts;
            const size_t *lens;
            int count;
            literal_texts(s, f, &texts, &lens, &count);
            uint64_t next = 0;
            bool accepting = false;
            for (int i = 0; i < count; i++) {
                if (!(f->mask >> i & 1)) continue;
                if ((size_t)f->pos == lens[i]) accepting = true;
                else if ((uint8_t)texts[i][f->pos] == c) next |= 1ull << i;
            }
            if (!next) {
                if (!accepting) return false;
                value_done(s);
                continue;
            }
            f->mask = next;
            f->pos++;
            bool longer = false;
            for (int i = 0; i < count; i++)
                if ((next >> i & 1) && lens[i] > (size_t)f->pos) longer = true;
            if (!longer) value_done(s);
            return true;
        }
        case FR_STRING: return string_step(s, f, c);
        case FR_KEY: {
            if (c == '"') {
                for (int i = 0; i < n->n_props; i++) {
                    if ((f->mask >> i & 1) && n->key_lens[i] == (size_t)f->pos) {
                        s->depth--;
                        bn_json_frame *p = &s->stack[s->depth - 1];
                        p->aux = i, p->mask |= 1ull << i, p->state = O_EXPECT_COLON, p->ws = 0;
                        return true;
                    }
                }
                return false;
            }
            uint64_t next = 0;
            for (int i = 0; i < n->n_props; i++)
                if ((f->mask >> i & 1) && n->key_lens[i] > (size_t)f->pos && (uint8_t)n->keys[i][f->pos] == c)
                    next |= 1ull << i;
            if (!next) return false;
            f->mask = next;
            f->pos++;
            return true;
        }
        case FR_OBJECT: {
            if (is_ws(c) && f->state != O_EXPECT_VALUE) {
                if (++f->ws > MAX_WS) return false;
                return true;
            }
            bool required_met = (n->required & ~f->mask) == 0;
            switch (f->state) {
            case O_START:
                if (c == '}' && required_met) { value_done(s); return true; }
                if (c == '"') { f->ws = 0; return start_key(s, f); }
                return false;
            case O_EXPECT_KEY:
                if (c == '"') { f->ws = 0; return start_key(s, f); }
                return false;
            case O_EXPECT_COLON:
                if (c != ':') return false;
                f->state = O_EXPECT_VALUE, f->ws = 0;
                return true;
            case O_EXPECT_VALUE:
                if (is_ws(c)) {
                    if (++f->ws > MAX_WS) return false;
                    return true;
                }
                if (!push(s, FR_VALUE, n->n_props ? n->prop_node[f->aux] : NODE_ANY)) return false;
                f->ws = 0;
                continue;
            case O_AFTER_VALUE:
                if (c == '}' && required_met) { value_done(s); return true; }
                if (c == ',' && (n->n_props == 0 || (all_bits(n->n_props) & ~f->mask))) {
                    f->state = O_EXPECT_KEY, f->ws = 0;
                    return true;
                }
                return false;
            }
            return false;
        }
        case FR_ARRAY:
            if (is_ws(c)) {
                if (++f->ws > MAX_WS) return false;
                return true;
            }
            f->ws = 0;
            if (f->state == A_START && c == ']') { value_done(s); return true; }
            if (f->state == A_AFTER_VALUE) {
                if (c == ']') { value_done(s); return true; }
                if (c == ',') { f->state = A_EXPECT_VALUE; return true; }
                return false;
            }
            if (!push(s, FR_VALUE, n->items)) return false;
            continue;
        case FR_SWITCH:
            if (f->state == S_LIT) {
                uint64_t next = 0;
                for (int i = 0; i < n->n_enum; i++)
                    if ((f->mask >> i & 1) && n->enum_lens[i] > (size_t)f->pos &&
                        (uint8_t)n->enum_text[i][f->pos] == c)
                        next |= 1ull << i;
                if (!next) return false;
                f->mask = next;
                f->pos++;
                for (int i = 0; i < n->n_enum; i++)
                    if ((next >> i & 1) && n->enum_lens[i] == (size_t)f->pos) f->state = S_VALUE, f->aux = i;
                return true;
            }
            if (f->state == S_VALUE) {
                if (!push(s, FR_VALUE, n->prop_node[f->aux])) return false;
                continue;
            }
            if (c != '}') return false;
            value_done(s);
            return true;
        default: return false;
        }
    }
}

bool bn_json_state_feed(bn_json_state *s, const uint8_t *bytes, size_t n) {
    if (s->dead) return false;
    for (size_t i = 0; i < n; i++) {
        if (!step(s, bytes[i])) {
            s->dead = true;
            return false;
        }
    }
    return true;
}

static int preferred_value(const bn_json_state *s, int idx) {
    const node *n = &s->g->nodes[idx];
    if (n->is_switch || n->n_enum) return (uint8_t)n->enum_text[0][0];
    if (n->types & T_OBJECT) return '{';
    if (n->types & (T_NUMBER | T_INTEGER)) return '0';
    if (n->types & T_STRING) return '"';
    if (n->types & T_ARRAY) return '[';
    if (n->types & T_BOOLEAN) return 't';
    return 'n';
}

/* The next byte of the shortest completion, or -1 when done. s is scratch (may be changed). */
static int next_byte(bn_json_state *s) {
    for (;;) {
        bn_json_frame *f = &s->stack[s->depth - 1];
        const node *n = &s->g->nodes[f->node];
        switch (f->kind) {
        case FR_ROOT: return f->state ? -1 : preferred_value(s, s->g->root);
        case FR_VALUE: return preferred_value(s, f->node);
        case FR_NUMBER:
            if (number_accepting(f->state)) { value_done(s); continue; }
            return '0';
        case FR_LITERAL: {
            const char *const *texts;
            const size_t *lens;
            int count;
            literal_texts(s, f, &texts, &lens, &count);
            for (int i = 0; i < count; i++)
                if ((f->mask >> i & 1) && lens[i] == (size_t)f->pos) { value_done(s); goto again; }
            for (int i = 0; i < count; i++)
                if (f->mask >> i & 1) return (uint8_t)texts[i][f->pos];
            return -1;
        }
        case FR_STRING:
            if (f->utf8_need) return f->utf8_lo;
            return f->state == 1 ? 'n' : '"';
        case FR_KEY: {
            const node *obj = &s->g->nodes[s->stack[s->depth - 2].node];
            int pick = -1;
            for (int i = 0; i < obj->n_props; i++) {
                if (!(f->mask >> i & 1)) continue;
                if (obj->key_lens[i] == (size_t)f->pos) return '"';
                if (pick < 0 || ((obj->required >> i & 1) && !(obj->required >> pick & 1))) pick = i;
            }
            return pick < 0 ? -1 : (uint8_t)obj->keys[pick][f->pos];
        }
        case FR_OBJECT: {
            bool required_met = (n->required & ~f->mask) == 0;
            switch (f->state) {
            case O_START: return required_met ? '}' : '"';
            case O_EXPECT_KEY: return '"';
            case O_EXPECT_COLON: return ':';
            case O_EXPECT_VALUE: return preferred_value(s, n->n_props ? n->prop_node[f->aux] : NODE_ANY);
            default: return required_met ? '}' : ',';
            }
        }
        case FR_ARRAY: return f->state == A_EXPECT_VALUE ? preferred_value(s, n->items) : ']';
        case FR_SWITCH:
            if (f->state == S_LIT) {
                for (int i = 0; i < n->n_enum; i++)
                    if (f->mask >> i & 1) return (uint8_t)n->enum_text[i][f->pos];
                return -1;
            }
            if (f->state == S_VALUE) return preferred_value(s, n->prop_node[f->aux]);
            return '}';
        default: return -1;
        }
    again:;
    }
}

static size_t completion(const bn_json_state *s, char *buf, size_t cap, size_t limit) {
    if (s->dead) return limit + 1;
    bn_json_state cur = *s;
    size_t n = 0;
    for (;;) {
        bn_json_state scratch = cur;
        int b = next_byte(&scratch);
        if (b < 0) break;
        if (n >= limit) return limit + 1;
        uint8_t byte = (uint8_t)b;
        if (!bn_json_state_feed(&cur, &byte, 1)) return limit + 1; /* cannot happen */
        if (buf) {
            if (n + 1 >= cap) return limit + 1;
            buf[n] = (char)byte;
        }
        n++;
    }
    if (buf && cap) buf[n] = '\0';
    return n;
}

size_t bn_json_state_completion_len(const bn_json_state *s, size_t limit) {
    return completion(s, NULL, 0, limit);
}

size_t bn_json_state_completion(const bn_json_state *s, char *buf, size_t cap) {
    if (!cap) return (size_t)-1;
    size_t limit = cap - 1;
    size_t n = completion(s, buf, cap, limit);
    return n > limit ? (size_t)-1 : n;
}
