/*
 * json_schema.c: JSON Schema -> grammar (see json_schema.h). One rule per schema node; the
 * building blocks of JSON text (whitespace, strings, numbers, any value) are rules made once per
 * grammar. Bounded integers become digit-range rules: [a, b] is split by digit count, then by
 * leading digit, into pieces "prefix, one digit range, any digits".
 */
#include "sampling/json_schema.h"

#include "sampling/grammar_regex.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SCHEMA_DEPTH 64
#define MAX_DIGITS 15
#define MAX_MAG 999999999999999LL /* the largest MAX_DIGITS-digit magnitude */
#define MAX_TOOLS 256

typedef struct ctx {
    bn_grammar_builder *b;
    const json_t *doc; /* the schema $ref pointers start from */
    json_t *refs;      /* pointer -> rule id */
    const char *ref_prefix;
    int ws, value, string, str_char, integer, number, digit, frac;
} ctx;

enum {
    T_OBJECT = 1, T_ARRAY = 2, T_STRING = 4, T_NUMBER = 8, T_INTEGER = 16, T_BOOLEAN = 32, T_NULL = 64,
    T_ANY = 127
};

static const char *const annotations[] = {
    "title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly",
    "writeOnly", "$defs", "definitions", "contentEncoding", "contentMediaType", "strict", "$anchor", NULL};

static bool is_annotation(const char *k) {
    for (int i = 0; annotations[i]; i++)
        if (!strcmp(k, annotations[i])) return true;
    return false;
}

static int fail(ctx *c, bn_status st, const char *path, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(ctx *c, bn_status st, const char *path, const char *fmt, ...) {
    char msg[BN_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    bn_grammar_builder_fail(c->b, st, "%s%s", path, msg);
    return -1;
}

/* ---------------------------------------------------------------- building blocks */

static int rule_of_literal(ctx *c, const char *text) {
    int r = bn_grammar_fresh_rule(c->b, "lit");
    if (r >= 0) bn_grammar_add_literal(c->b, bn_grammar_alt(c->b, r), text, strlen(text));
    return r;
}

static int ws_rule(ctx *c) {
    if (c->ws < 0) {
        int one = bn_grammar_rule(c->b, "ws-char");
        uint64_t set[4] = {0};
        set[0] = 1ull << ' ' | 1ull << '\t' | 1ull << '\n';
        bn_grammar_add_byteset(c->b, bn_grammar_alt(c->b, one), set);
        c->ws = bn_grammar_rule(c->b, "ws");
        bn_grammar_add_repeat(c->b, bn_grammar_alt(c->b, c->ws), one, 0, 4);
    }
    return c->ws;
}

static int digit_rule(ctx *c) {
    if (c->digit < 0) {
        c->digit = bn_grammar_rule(c->b, "digit");
        bn_grammar_add_byte_range(c->b, bn_grammar_alt(c->b, c->digit), '0', '9');
    }
    return c->digit;
}

/* One character of a JSON string's contents: an unescaped character or a short escape. */
static int str_char_rule(ctx *c) {
    if (c->str_char < 0) {
        c->str_char = bn_grammar_rule(c->b, "string-char");
        static const uint32_t plain[] = {0x20, 0x21, 0x23, 0x5b, 0x5d, 0x10ffff};
        bn_grammar_add_codepoints(c->b, bn_grammar_alt(c->b, c->str_char), plain, 3, false);
        int a = bn_grammar_alt(c->b, c->str_char);
        bn_grammar_add_literal(c->b, a, "\\", 1);
        uint64_t set[4] = {0};
        for (const char *e = "\"\\/bfnrt"; *e; e++) set[(uint8_t)*e / 64] |= 1ull << ((uint8_t)*e % 64);
        bn_grammar_add_byteset(c->b, a, set);
    }
    return c->str_char;
}

static int string_rule(ctx *c) {
    if (c->string < 0) {
        c->string = bn_grammar_rule(c->b, "string");
        int a = bn_grammar_alt(c->b, c->string);
        bn_grammar_add_literal(c->b, a, "\"", 1);
        bn_grammar_add_repeat(c->b, a, str_char_rule(c), 0, -1);
        bn_grammar_add_literal(c->b, a, "\"", 1);
    }
    return c->string;
}

/* "-"? ("0" | [1-9][0-9]{0,14}) */
static int integer_rule(ctx *c) {
    if (c->integer < 0) {
        int mag = bn_grammar_rule(c->b, "magnitude");
        bn_grammar_add_literal(c->b, bn_grammar_alt(c->b, mag), "0", 1);
        int a = bn_grammar_alt(c->b, mag);
        bn_grammar_add_byte_range(c->b, a, '1', '9');
        bn_grammar_add_repeat(c->b, a, digit_rule(c), 0, MAX_DIGITS - 1);
        c->integer = bn_grammar_rule(c->b, "integer");
        bn_grammar_add_ref(c->b, bn_grammar_alt(c->b, c->integer), mag);
        a = bn_grammar_alt(c->b, c->integer);
        bn_grammar_add_literal(c->b, a, "-", 1);
        bn_grammar_add_ref(c->b, a, mag);
    }
    return c->integer;
}

/* "." [0-9]{1,15} */
static int frac_rule(ctx *c) {
    if (c->frac < 0) {
        c->frac = bn_grammar_rule(c->b, "fraction");
        int a = bn_grammar_alt(c->b, c->frac);
        bn_grammar_add_literal(c->b, a, ".", 1);
        bn_grammar_add_repeat(c->b, a, digit_rule(c), 1, MAX_DIGITS);
    }
    return c->frac;
}

/* integer fraction? ([eE] [-+]? [0-9]{1,2})? */
static int number_rule(ctx *c) {
    if (c->number < 0) {
        int frac_opt = bn_grammar_rule(c->b, "fraction-opt");
        bn_grammar_add_ref(c->b, bn_grammar_alt(c->b, frac_opt), frac_rule(c));
        bn_grammar_alt(c->b, frac_opt);
        uint64_t e_set[4] = {0}, sign_set[4] = {0};
        e_set[1] = 1ull << ('e' - 64) | 1ull << ('E' - 64);
        sign_set[0] = 1ull << '-' | 1ull << '+';
        int sign = bn_grammar_rule(c->b, "exponent-sign");
        bn_grammar_add_byteset(c->b, bn_grammar_alt(c->b, sign), sign_set);
        bn_grammar_alt(c->b, sign);
        int exp_opt = bn_grammar_rule(c->b, "exponent-opt");
        int a = bn_grammar_alt(c->b, exp_opt);
        bn_grammar_add_byteset(c->b, a, e_set);
        bn_grammar_add_ref(c->b, a, sign);
        bn_grammar_add_repeat(c->b, a, digit_rule(c), 1, 2);
        bn_grammar_alt(c->b, exp_opt);
        c->number = bn_grammar_rule(c->b, "number");
        a = bn_grammar_alt(c->b, c->number);
        bn_grammar_add_ref(c->b, a, integer_rule(c));
        bn_grammar_add_ref(c->b, a, frac_opt);
        bn_grammar_add_ref(c->b, a, exp_opt);
    }
    return c->number;
}

/* "{" ws (kv ("," ws kv)*)? "}" or "[" ws (v ws ("," ws v ws)*)? "]" around element rule `item`
 * (which ends with its own trailing ws). */
static int list_rule(ctx *c, const char *name, char open, char close, int item, int min, int max) {
    int r = bn_grammar_fresh_rule(c->b, name);
    if (r < 0) return -1;
    int comma_item = bn_grammar_fresh_rule(c->b, name);
    int ci = bn_grammar_alt(c->b, comma_item);
    bn_grammar_add_literal(c->b, ci, ",", 1);
    bn_grammar_add_ref(c->b, ci, ws_rule(c));
    bn_grammar_add_ref(c->b, ci, item);
    if (max != 0) {
        int a = bn_grammar_alt(c->b, r);
        bn_grammar_add_literal(c->b, a, &open, 1);
        bn_grammar_add_ref(c->b, a, ws_rule(c));
        bn_grammar_add_ref(c->b, a, item);
        bn_grammar_add_repeat(c->b, a, comma_item, min > 1 ? min - 1 : 0, max < 0 ? -1 : max - 1);
        bn_grammar_add_literal(c->b, a, &close, 1);
    }
    if (min == 0) {
        int a = bn_grammar_alt(c->b, r);
        bn_grammar_add_literal(c->b, a, &open, 1);
        bn_grammar_add_ref(c->b, a, ws_rule(c));
        bn_grammar_add_literal(c->b, a, &close, 1);
    }
    return r;
}

static int value_rule(ctx *c);

/* string ws ":" ws value ws */
static int kv_rule(ctx *c, int key, int value) {
    int r = bn_grammar_fresh_rule(c->b, "member");
    int a = bn_grammar_alt(c->b, r);
    bn_grammar_add_ref(c->b, a, key);
    bn_grammar_add_ref(c->b, a, ws_rule(c));
    bn_grammar_add_literal(c->b, a, ":", 1);
    bn_grammar_add_ref(c->b, a, ws_rule(c));
    bn_grammar_add_ref(c->b, a, value);
    bn_grammar_add_ref(c->b, a, ws_rule(c));
    return r;
}

/* value ws */
static int with_ws(ctx *c, int value) {
    int r = bn_grammar_fresh_rule(c->b, "item");
    int a = bn_grammar_alt(c->b, r);
    bn_grammar_add_ref(c->b, a, value);
    bn_grammar_add_ref(c->b, a, ws_rule(c));
    return r;
}

/* Any JSON value. */
static int value_rule(ctx *c) {
    if (c->value < 0) {
        c->value = bn_grammar_rule(c->b, "value");
        int object = list_rule(c, "object", '{', '}', kv_rule(c, string_rule(c), c->value), 0, -1);
        int array = list_rule(c, "array", '[', ']', with_ws(c, c->value), 0, -1);
        const int parts[] = {object, array, string_rule(c), number_rule(c)};
        for (size_t i = 0; i < 4; i++) bn_grammar_add_ref(c->b, bn_grammar_alt(c->b, c->value), parts[i]);
        for (const char *const *lit = (const char *const[]){"true", "false", "null", NULL}; *lit; lit++)
            bn_grammar_add_literal(c->b, bn_grammar_alt(c->b, c->value), *lit, strlen(*lit));
    }
    return c->value;
}

/* ---------------------------------------------------------------- numeric ranges */

static int64_t pow10_i(int d) {
    int64_t p = 1;
    while (d-- > 0) p *= 10;
    return p;
}

static int n_digits(int64_t v) {
    int d = 1;
    while (v >= 10) v /= 10, d++;
    return d;
}

/* Exactly d digits (leading zeros allowed) whose value lies in [x, y]. */
static int same_len(ctx *c, int64_t x, int64_t y, int d) {
    int r = bn_grammar_fresh_rule(c->b, "digits");
    if (r < 0) return -1;
    if (d == 1) {
        bn_grammar_add_byte_range(c->b, bn_grammar_alt(c->b, r), (uint8_t)('0' + x), (uint8_t)('0' + y));
        return r;
    }
    int64_t p = pow10_i(d - 1);
    int64_t fx = x / p, fy = y / p, rx = x % p, ry = y % p;
    if (fx == fy) {
        int a = bn_grammar_alt(c->b, r);
        bn_grammar_add_byte_range(c->b, a, (uint8_t)('0' + fx), (uint8_t)('0' + fx));
        bn_grammar_add_ref(c->b, a, same_len(c, rx, ry, d - 1));
        return r;
    }
    /* fx + [rx, 99..9] | [fx+1, fy-1] + any | fy + [0, ry]; whole-decade ends join the middle */
    int64_t mid_lo = fx + 1, mid_hi = fy - 1;
    if (rx == 0) mid_lo = fx;
    else {
        int a = bn_grammar_alt(c->b, r);
        bn_grammar_add_byte_range(c->b, a, (uint8_t)('0' + fx), (uint8_t)('0' + fx));
        bn_grammar_add_ref(c->b, a, same_len(c, rx, p - 1, d - 1));
    }
    if (ry == p - 1) mid_hi = fy;
    else {
        int a = bn_grammar_alt(c->b, r);
        bn_grammar_add_byte_range(c->b, a, (uint8_t)('0' + fy), (uint8_t)('0' + fy));
        bn_grammar_add_ref(c->b, a, same_len(c, 0, ry, d - 1));
    }
    if (mid_lo <= mid_hi) {
        int a = bn_grammar_alt(c->b, r);
        bn_grammar_add_byte_range(c->b, a, (uint8_t)('0' + mid_lo), (uint8_t)('0' + mid_hi));
        bn_grammar_add_repeat(c->b, a, digit_rule(c), d - 1, d - 1);
    }
    return r;
}

/* Decimal magnitudes (no leading zeros) in [a, b], 0 <= a <= b <= MAX_MAG. */
static int mag_range(ctx *c, int64_t a, int64_t b) {
    int r = bn_grammar_fresh_rule(c->b, "range");
    if (r < 0) return -1;
    for (int d = n_digits(a); d <= n_digits(b); d++) {
        int64_t lo = d == 1 ? 0 : pow10_i(d - 1), hi = pow10_i(d) - 1;
        if (lo < a) lo = a;
        if (hi > b) hi = b;
        if (lo <= hi) bn_grammar_add_ref(c->b, bn_grammar_alt(c->b, r), same_len(c, lo, hi, d));
    }
    return r;
}

/* Integers in [lo, hi] (both within +-MAX_MAG); -1 with nothing added when the range is empty. */
static int int_range(ctx *c, int64_t lo, int64_t hi) {
    if (lo > hi) return -1;
    int r = bn_grammar_fresh_rule(c->b, "int-range");
    if (r < 0) return -1;
    if (hi >= 0) bn_grammar_add_ref(c->b, bn_grammar_alt(c->b, r), mag_range(c, lo > 0 ? lo : 0, hi));
    if (lo < 0) {
        int a = bn_grammar_alt(c->b, r);
        bn_grammar_add_literal(c->b, a, "-", 1);
        bn_grammar_add_ref(c->b, a, mag_range(c, hi < -1 ? -hi : 1, -lo));
    }
    return r;
}

static int64_t clamp_mag(double v) { return v > (double)MAX_MAG ? MAX_MAG : v < -(double)MAX_MAG ? -MAX_MAG : (int64_t)v; }

typedef struct bounds {
    int64_t lo, hi;     /* the integers the bounds allow (clamped to +-MAX_MAG) */
    bool has_lo, has_hi;
    int64_t below_hi;   /* the largest n with n + 1 <= every upper bound (n + fraction stays inside) */
    int64_t above_lo;   /* the largest m with -(m + 1) >= every lower bound */
} bounds;

/* minimum/maximum/exclusiveMinimum/exclusiveMaximum (draft 4's boolean exclusives too). */
static bool read_bounds(ctx *c, const json_t *s, const char *path, bounds *out) {
    out->lo = -MAX_MAG;
    out->hi = MAX_MAG;
    out->has_lo = out->has_hi = false;
    const json_t *min = json_object_get(s, "minimum"), *max = json_object_get(s, "maximum");
    const json_t *xmin = json_object_get(s, "exclusiveMinimum"), *xmax = json_object_get(s, "exclusiveMaximum");
    static const char *const names[] = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"};
    const json_t *all[] = {min, max, xmin, xmax};
    for (int i = 0; i < 4; i++)
        if (all[i] && !json_is_number(all[i]) && !(i >= 2 && json_is_boolean(all[i]))) {
            fail(c, BN_ERR_INVALID, path, ".%s: must be a number", names[i]);
            return false;
        }
    bool min_excl = json_is_true(xmin), max_excl = json_is_true(xmax);
    out->below_hi = out->above_lo = MAX_MAG;
    for (int i = 0; i < 4; i++) {
        if (!json_is_number(all[i])) continue;
        double v = json_number_value(all[i]);
        int64_t n = clamp_mag((i % 2 ? floor(v) : floor(-v)) - 1);
        if (i % 2 && n < out->below_hi) out->below_hi = n;
        if (!(i % 2) && n < out->above_lo) out->above_lo = n;
    }
    if (min) {
        double v = json_number_value(min);
        int64_t l = clamp_mag(min_excl ? floor(v) + 1 : ceil(v));
        out->lo = l, out->has_lo = true;
    }
    if (xmin && json_is_number(xmin)) {
        int64_t l = clamp_mag(floor(json_number_value(xmin)) + 1);
        if (!out->has_lo || l > out->lo) out->lo = l;
        out->has_lo = true;
    }
    if (max) {
        double v = json_number_value(max);
        int64_t h = clamp_mag(max_excl ? ceil(v) - 1 : floor(v));
        out->hi = h, out->has_hi = true;
    }
    if (xmax && json_is_number(xmax)) {
        int64_t h = clamp_mag(ceil(json_number_value(xmax)) - 1);
        if (!out->has_hi || h < out->hi) out->hi = h;
        out->has_hi = true;
    }
    return true;
}

static int integer_schema(ctx *c, const json_t *s, const char *path) {
    bounds bd;
    if (!read_bounds(c, s, path, &bd)) return -1;
    if (!bd.has_lo && !bd.has_hi) return integer_rule(c);
    int r = int_range(c, bd.lo, bd.hi);
    return r >= 0 ? r : fail(c, BN_ERR_INVALID, path, ": no integer satisfies the bounds");
}

/* Numbers within bounds: integers in [lo, hi], and decimals whose integer part keeps them inside
 * whatever the fraction (ip in [max(lo, 0), below_hi]; negative: magnitude in [max(-hi, 0),
 * above_lo]). */
static int number_schema(ctx *c, const json_t *s, const char *path) {
    bounds bd;
    if (!read_bounds(c, s, path, &bd)) return -1;
    if (!bd.has_lo && !bd.has_hi) return number_rule(c);
    int r = bn_grammar_fresh_rule(c->b, "num-range");
    bool any = false;
    int ints = int_range(c, bd.lo, bd.hi);
    if (ints >= 0) bn_grammar_add_ref(c->b, bn_grammar_alt(c->b, r), ints), any = true;
    int64_t plo = bd.lo > 0 ? bd.lo : 0, phi = bd.below_hi;
    if (plo <= phi) {
        int a = bn_grammar_alt(c->b, r);
        bn_grammar_add_ref(c->b, a, mag_range(c, plo, phi));
        bn_grammar_add_ref(c->b, a, frac_rule(c));
        any = true;
    }
    int64_t nlo = bd.hi < 0 ? -bd.hi : 0, nhi = bd.above_lo;
    if (nlo <= nhi) {
        int a = bn_grammar_alt(c->b, r);
        bn_grammar_add_literal(c->b, a, "-", 1);
        bn_grammar_add_ref(c->b, a, mag_range(c, nlo, nhi));
        bn_grammar_add_ref(c->b, a, frac_rule(c));
        any = true;
    }
    return any ? r : fail(c, BN_ERR_UNSUPPORTED, path, ": bounds without an integer or a whole unit between them are not supported");
}

/* ---------------------------------------------------------------- schema nodes */

static int compile(ctx *c, const json_t *s, const char *path, int depth);

/* Resolves a local JSON pointer ("#", "#/$defs/a"); NULL when it points nowhere. */
static const json_t *resolve(const json_t *doc, const char *ref) {
    if (ref[0] != '#') return NULL;
    const char *p = ref + 1;
    const json_t *cur = doc;
    while (*p == '/' && cur) {
        p++;
        char part[256];
        size_t n = 0;
        for (; *p && *p != '/'; p++) {
            char ch = *p;
            if (ch == '~' && p[1] == '1') ch = '/', p++;
            else if (ch == '~' && p[1] == '0') ch = '~', p++;
            if (n + 1 >= sizeof part) return NULL;
            part[n++] = ch;
        }
        part[n] = '\0';
        if (json_is_object(cur)) cur = json_object_get(cur, part);
        else if (json_is_array(cur)) {
            char *end;
            long i = strtol(part, &end, 10);
            cur = *end || n == 0 || i < 0 ? NULL : json_array_get(cur, (size_t)i);
        } else cur = NULL;
    }
    return *p ? NULL : cur;
}

/* The target of a pure {"$ref": ...} chain (depth-limited); the schema itself otherwise. */
static const json_t *deref(ctx *c, const json_t *s, const char *path) {
    for (int i = 0; i < 32; i++) {
        const json_t *ref = json_is_object(s) ? json_object_get(s, "$ref") : NULL;
        if (!ref) return s;
        const char *text = json_string_value(ref);
        const json_t *target = text ? resolve(c->doc, text) : NULL;
        if (!target) {
            fail(c, BN_ERR_INVALID, path, ".$ref: \"%.100s\" does not point into this schema", text ? text : "");
            return NULL;
        }
        s = target;
    }
    fail(c, BN_ERR_INVALID, path, ".$ref: a chain of more than 32 references");
    return NULL;
}

static unsigned type_bit(const char *name) {
    static const struct { const char *name; unsigned bit; } table[] = {
        {"object", T_OBJECT}, {"array", T_ARRAY}, {"string", T_STRING}, {"number", T_NUMBER},
        {"integer", T_INTEGER}, {"boolean", T_BOOLEAN}, {"null", T_NULL}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (name && !strcmp(name, table[i].name)) return table[i].bit;
    return 0;
}

/* The types a schema allows: its "type" (and "nullable"), else what its keywords imply. 0 on error. */
static unsigned schema_types(ctx *c, const json_t *s, const char *path) {
    const json_t *type = json_object_get(s, "type");
    unsigned types = 0;
    if (json_is_string(type)) {
        types = type_bit(json_string_value(type));
        if (!types) {
            fail(c, BN_ERR_INVALID, path, ".type: unknown type \"%.32s\"", json_string_value(type));
            return 0;
        }
    } else if (json_is_array(type) && json_array_size(type) > 0) {
        for (size_t i = 0; i < json_array_size(type); i++) {
            unsigned bit = type_bit(json_string_value(json_array_get(type, i)));
            if (!bit) {
                fail(c, BN_ERR_INVALID, path, ".type[%zu]: unknown type", i);
                return 0;
            }
            types |= bit;
        }
    } else if (type) {
        fail(c, BN_ERR_INVALID, path, ".type: must be a string or an array of strings");
        return 0;
    } else {
        static const struct { const char *key; unsigned bit; } implied[] = {
            {"properties", T_OBJECT}, {"additionalProperties", T_OBJECT}, {"required", T_OBJECT},
            {"items", T_ARRAY}, {"prefixItems", T_ARRAY}, {"minItems", T_ARRAY}, {"maxItems", T_ARRAY},
            {"pattern", T_STRING}, {"minLength", T_STRING}, {"maxLength", T_STRING}, {"format", T_STRING},
            {"minimum", T_NUMBER}, {"maximum", T_NUMBER}, {"exclusiveMinimum", T_NUMBER},
            {"exclusiveMaximum", T_NUMBER}};
        for (size_t i = 0; i < sizeof implied / sizeof implied[0]; i++)
            if (json_object_get(s, implied[i].key)) types |= implied[i].bit;
        if (!types) types = T_ANY;
    }
    if (json_is_true(json_object_get(s, "nullable"))) types |= T_NULL;
    return types;
}

static bool value_has_type(const json_t *v, unsigned types) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return types & T_OBJECT;
    case JSON_ARRAY: return types & T_ARRAY;
    case JSON_STRING: return types & T_STRING;
    case JSON_INTEGER: return types & (T_INTEGER | T_NUMBER);
    case JSON_REAL:
        return (types & T_NUMBER) || ((types & T_INTEGER) && json_real_value(v) == floor(json_real_value(v)));
    case JSON_TRUE:
    case JSON_FALSE: return types & T_BOOLEAN;
    default: return types & T_NULL;
    }
}

/* enum / const: the values (of the allowed types) as compact JSON texts. */
static int enum_schema(ctx *c, const json_t *s, const char *path, unsigned types) {
    const json_t *values = json_object_get(s, "enum");
    json_t *single = NULL;
    if (!values) {
        single = json_pack("[O]", json_object_get(s, "const"));
        values = single;
    } else if (!json_is_array(values) || json_array_size(values) == 0) {
        return fail(c, BN_ERR_INVALID, path, ".enum: must be a non-empty array");
    }
    int r = bn_grammar_fresh_rule(c->b, "enum");
    bool any = false;
    for (size_t i = 0; r >= 0 && i < json_array_size(values); i++) {
        const json_t *v = json_array_get(values, i);
        if (!value_has_type(v, types)) continue;
        char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!text) {
            json_decref(single);
            return fail(c, BN_ERR_NOMEM, path, ": out of memory");
        }
        bn_grammar_add_literal(c->b, bn_grammar_alt(c->b, r), text, strlen(text));
        free(text);
        any = true;
    }
    json_decref(single);
    return any ? r : fail(c, BN_ERR_INVALID, path, ".enum: no value has the schema's type");
}

static bool read_count(ctx *c, const json_t *s, const char *key, const char *path, int *out) {
    const json_t *v = json_object_get(s, key);
    if (!v) return true;
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        fail(c, BN_ERR_INVALID, path, ".%s: must be a non-negative integer", key);
        return false;
    }
    if (json_integer_value(v) > BN_GRAMMAR_MAX_REPEAT) {
        fail(c, BN_ERR_UNSUPPORTED, path, ".%s: more than %d is not supported", key, BN_GRAMMAR_MAX_REPEAT);
        return false;
    }
    *out = (int)json_integer_value(v);
    return true;
}

static int quoted(ctx *c, int content) {
    int r = bn_grammar_fresh_rule(c->b, "quoted");
    int a = bn_grammar_alt(c->b, r);
    bn_grammar_add_literal(c->b, a, "\"", 1);
    bn_grammar_add_ref(c->b, a, content);
    bn_grammar_add_literal(c->b, a, "\"", 1);
    return r;
}

static const char *format_regex(const char *format) {
    static const struct { const char *name, *regex; } table[] = {
        {"date", "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"},
        {"time", "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,3})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"},
        {"date-time", "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
                      "(\\.[0-9]{1,3})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"},
        {"uuid", "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"},
        {"email", "[a-z0-9]{1,20}(\\.[a-z0-9]{1,20}){0,2}@[a-z0-9]{1,20}(\\.[a-z0-9]{1,20}){0,2}\\.[a-z]{2,6}"},
        {"ipv4", "((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"},
        {"ipv6", "([0-9a-f]{1,4}:){7}[0-9a-f]{1,4}"},
        {"hostname", "[a-z0-9]{1,20}(\\.[a-z0-9]{1,20}){0,3}"},
        {"uri", "https?://[a-z0-9]{1,20}(\\.[a-z0-9]{1,20}){0,2}\\.[a-z]{2,6}(/[a-zA-Z0-9_-]{1,20}){0,4}"},
        {"duration", "P([0-9]{1,3}D|T[0-9]{1,3}[HMS])"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (!strcmp(format, table[i].name)) return table[i].regex;
    return NULL;
}

static int string_schema(ctx *c, const json_t *s, const char *path) {
    const json_t *pattern = json_object_get(s, "pattern");
    const char *format = json_string_value(json_object_get(s, "format"));
    const char *regex = format ? format_regex(format) : NULL;
    int min = 0, max = -1;
    if (!read_count(c, s, "minLength", path, &min) || !read_count(c, s, "maxLength", path, &max)) return -1;
    bool lengths = json_object_get(s, "minLength") || json_object_get(s, "maxLength");
    if (max >= 0 && max < min) return fail(c, BN_ERR_INVALID, path, ": maxLength is below minLength");
    if (pattern && !json_is_string(pattern)) return fail(c, BN_ERR_INVALID, path, ".pattern: must be a string");
    if (pattern && regex) return fail(c, BN_ERR_UNSUPPORTED, path, ".pattern: together with format \"%s\" is not supported", format);
    if ((pattern || regex) && lengths)
        return fail(c, BN_ERR_UNSUPPORTED, path, ".%s: together with minLength/maxLength is not supported",
                    pattern ? "pattern" : "format");
    if (pattern || regex) {
        int content = -1;
        bn_error err;
        if (bn_grammar_regex(c->b, pattern ? json_string_value(pattern) : regex, BN_REGEX_JSON_STRING, &content, &err))
            return fail(c, err.code, path, ".pattern: %s", err.message);
        return quoted(c, content);
    }
    if (!lengths) return string_rule(c);
    int r = bn_grammar_fresh_rule(c->b, "string");
    int a = bn_grammar_alt(c->b, r);
    bn_grammar_add_literal(c->b, a, "\"", 1);
    bn_grammar_add_repeat(c->b, a, str_char_rule(c), min, max);
    bn_grammar_add_literal(c->b, a, "\"", 1);
    return r;
}

static int array_schema(ctx *c, const json_t *s, const char *path, int depth) {
    char sub[512];
    int min = 0, max = -1;
    if (!read_count(c, s, "minItems", path, &min) || !read_count(c, s, "maxItems", path, &max)) return -1;
    if (max >= 0 && max < min) return fail(c, BN_ERR_INVALID, path, ": maxItems is below minItems");
    const json_t *prefix = json_object_get(s, "prefixItems"), *items = json_object_get(s, "items");
    if (prefix && !json_is_array(prefix)) return fail(c, BN_ERR_INVALID, path, ".prefixItems: must be an array");
    if (json_is_array(items)) { /* draft 4-7 tuples */
        prefix = items;
        items = json_object_get(s, "additionalItems");
    }
    int k = (int)json_array_size(prefix);
    if (max >= 0 && k > max) k = max;
    bool closed = json_is_false(items);
    if (closed && min > k) return fail(c, BN_ERR_INVALID, path, ": minItems needs more items than prefixItems allows");
    int item = -1;
    if (!closed && (max < 0 || max > k)) {
        snprintf(sub, sizeof sub, "%s.items", path);
        item = items ? compile(c, items, sub, depth + 1) : value_rule(c);
        if (item < 0) return -1;
        item = with_ws(c, item);
    }
    if (k == 0) return item < 0 ? rule_of_literal(c, "[]") : list_rule(c, "array", '[', ']', item, min, max);
    /* seq[i]: the elements from index i on, i elements already written */
    int next = bn_grammar_fresh_rule(c->b, "tail");
    if (item < 0) bn_grammar_alt(c->b, next);
    else {
        int ci = bn_grammar_fresh_rule(c->b, "item");
        int a = bn_grammar_alt(c->b, ci);
        bn_grammar_add_literal(c->b, a, ",", 1);
        bn_grammar_add_ref(c->b, a, ws_rule(c));
        bn_grammar_add_ref(c->b, a, item);
        int left_min = min > k ? min - k : 0, left_max = max < 0 ? -1 : max - k;
        bn_grammar_add_repeat(c->b, bn_grammar_alt(c->b, next), ci, left_min, left_max);
    }
    for (int i = k - 1; i >= 0; i--) {
        snprintf(sub, sizeof sub, "%s.prefixItems[%d]", path, i);
        int el = compile(c, json_array_get(prefix, (size_t)i), sub, depth + 1);
        if (el < 0) return -1;
        int seq = bn_grammar_fresh_rule(c->b, "seq");
        int a = bn_grammar_alt(c->b, seq);
        if (i > 0) {
            bn_grammar_add_literal(c->b, a, ",", 1);
            bn_grammar_add_ref(c->b, a, ws_rule(c));
        }
        bn_grammar_add_ref(c->b, a, el);
        bn_grammar_add_ref(c->b, a, ws_rule(c));
        bn_grammar_add_ref(c->b, a, next);
        if (i >= min) bn_grammar_alt(c->b, seq);
        next = seq;
    }
    int r = bn_grammar_fresh_rule(c->b, "array");
    int a = bn_grammar_alt(c->b, r);
    bn_grammar_add_literal(c->b, a, "[", 1);
    bn_grammar_add_ref(c->b, a, ws_rule(c));
    bn_grammar_add_ref(c->b, a, next);
    bn_grammar_add_literal(c->b, a, "]", 1);
    return r;
}

static int object_schema(ctx *c, const json_t *s, const char *path, int depth) {
    char sub[512];
    const json_t *props = json_object_get(s, "properties"), *required = json_object_get(s, "required");
    const json_t *addl = json_object_get(s, "additionalProperties");
    if (props && !json_is_object(props)) return fail(c, BN_ERR_INVALID, path, ".properties: must be an object");
    if (required && !json_is_array(required)) return fail(c, BN_ERR_INVALID, path, ".required: must be an array");
    for (size_t i = 0; i < json_array_size(required); i++)
        if (!json_is_string(json_array_get(required, i)))
            return fail(c, BN_ERR_INVALID, path, ".required[%zu]: must be a string", i);
    int min = 0, max = -1;
    if (!read_count(c, s, "minProperties", path, &min) || !read_count(c, s, "maxProperties", path, &max)) return -1;
    /* the members written: declared properties, then required names not declared */
    size_t n_props = json_object_size(props), n = n_props;
    for (size_t i = 0; i < json_array_size(required); i++)
        if (!json_object_get(props, json_string_value(json_array_get(required, i)))) n++;
    if (n == 0) {
        if (json_is_false(addl)) return rule_of_literal(c, "{}");
        int value = value_rule(c);
        if (json_is_object(addl)) {
            snprintf(sub, sizeof sub, "%s.additionalProperties", path);
            if ((value = compile(c, addl, sub, depth + 1)) < 0) return -1;
        }
        return list_rule(c, "object", '{', '}', kv_rule(c, string_rule(c), value), min, max);
    }
    if (n > 1000) return fail(c, BN_ERR_UNSUPPORTED, path, ".properties: more than 1000");
    int n_required = 0;
    const char **keys = calloc(n, sizeof *keys);
    int *members = calloc(n, sizeof *members);
    bool *req = calloc(n, sizeof *req);
    if (!keys || !members || !req) {
        free(keys), free(members), free(req);
        return fail(c, BN_ERR_NOMEM, path, ": out of memory");
    }
    size_t i = 0;
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)props, key, value) keys[i++] = key;
    for (size_t r = 0; r < json_array_size(required); r++) {
        const char *name = json_string_value(json_array_get(required, r));
        if (!json_object_get(props, name)) {
            bool dup = false;
            for (size_t j = n_props; j < i; j++) dup |= !strcmp(keys[j], name);
            if (!dup) keys[i++] = name;
        }
    }
    n = i;
    int result = -1;
    for (i = 0; i < n; i++) {
        for (size_t r = 0; r < json_array_size(required); r++)
            if (!strcmp(json_string_value(json_array_get(required, r)), keys[i])) req[i] = true;
        n_required += req[i];
        const json_t *ps = json_object_get(props, keys[i]);
        snprintf(sub, sizeof sub, "%s.properties.%.64s", path, keys[i]);
        int v = ps ? compile(c, ps, sub, depth + 1) : value_rule(c);
        json_t *name = json_string(keys[i]);
        char *text = name ? json_dumps(name, JSON_ENCODE_ANY) : NULL;
        json_decref(name);
        if (v < 0 || !text) {
            free(text);
            if (v >= 0) fail(c, BN_ERR_NOMEM, path, ": out of memory");
            goto done;
        }
        members[i] = kv_rule(c, rule_of_literal(c, text), v);
        free(text);
    }
    if (min > n_required || (max >= 0 && (size_t)max < n))
        fail(c, BN_ERR_UNSUPPORTED, path, ".%s: on an object with properties is not supported",
             min > n_required ? "minProperties" : "maxProperties");
    else {
        /* first[i]: members from i on, none written yet; later[i]: some written (comma first) */
        int first = bn_grammar_fresh_rule(c->b, "members"), later = bn_grammar_fresh_rule(c->b, "members");
        bn_grammar_alt(c->b, first);
        bn_grammar_alt(c->b, later);
        for (size_t j = n; j-- > 0;) {
            int nf = bn_grammar_fresh_rule(c->b, "members"), nl = bn_grammar_fresh_rule(c->b, "members");
            int a = bn_grammar_alt(c->b, nl);
            bn_grammar_add_literal(c->b, a, ",", 1);
            bn_grammar_add_ref(c->b, a, ws_rule(c));
            bn_grammar_add_ref(c->b, a, members[j]);
            bn_grammar_add_ref(c->b, a, later);
            if (!req[j]) bn_grammar_add_ref(c->b, bn_grammar_alt(c->b, nl), later);
            a = bn_grammar_alt(c->b, nf);
            bn_grammar_add_ref(c->b, a, members[j]);
            bn_grammar_add_ref(c->b, a, later);
            if (!req[j]) bn_grammar_add_ref(c->b, bn_grammar_alt(c->b, nf), first);
            first = nf;
            later = nl;
        }
        result = bn_grammar_fresh_rule(c->b, "object");
        int a = bn_grammar_alt(c->b, result);
        bn_grammar_add_literal(c->b, a, "{", 1);
        bn_grammar_add_ref(c->b, a, ws_rule(c));
        bn_grammar_add_ref(c->b, a, first);
        bn_grammar_add_literal(c->b, a, "}", 1);
    }
done:
    free(keys);
    free(members);
    free(req);
    return result;
}

/* ---------------------------------------------------------------- combining schemas */

static const char *const min_like[] = {"minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties", NULL};
static const char *const max_like[] = {"maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties", NULL};

static bool in_list(const char *k, const char *const *list) {
    for (; *list; list++)
        if (!strcmp(k, *list)) return true;
    return false;
}

static json_t *types_array(const json_t *t) {
    if (json_is_array(t)) return json_deep_copy(t);
    return json_pack("[O]", (json_t *)t);
}

/* The schema one side gives property `name`: its own, else what its additionalProperties says
 * (true when absent). */
static const json_t *property_of(const json_t *s, const char *name) {
    const json_t *p = json_object_get(json_object_get(s, "properties"), name);
    if (p) return p;
    const json_t *extra = json_object_get(s, "additionalProperties");
    return extra ? extra : json_true();
}

/* Both sides' properties into out: a property one side's additionalProperties excludes is left out
 * (an error when required), one both describe gets both schemas (allOf). Each side's
 * additionalProperties only sees its own properties, as JSON Schema defines it. */
static bool merge_properties(ctx *c, json_t *out, const json_t *a, const json_t *b, const char *path) {
    json_t *props = json_object();
    const json_t *sides[2] = {a, b};
    for (int side = 0; side < 2 && props; side++) {
        const char *name;
        json_t *ignored;
        json_object_foreach(json_object_get(sides[side], "properties"), name, ignored) {
            if (json_object_get(props, name)) continue;
            const json_t *sa = property_of(a, name), *sb = property_of(b, name);
            if (json_is_false(sa) || json_is_false(sb)) {
                const json_t *req = json_object_get(out, "required");
                for (size_t i = 0; i < json_array_size(req); i++)
                    if (!strcmp(json_string_value(json_array_get(req, i)) ? json_string_value(json_array_get(req, i)) : "", name)) {
                        json_decref(props);
                        fail(c, BN_ERR_INVALID, path, ".allOf: property \"%.64s\" is required but another part's additionalProperties excludes it", name);
                        return false;
                    }
                continue;
            }
            json_t *both = json_is_true(sa) ? json_deep_copy(sb) : json_is_true(sb) ? json_deep_copy(sa)
                         : json_equal(sa, sb) ? json_deep_copy(sa) : json_pack("{s:[O,O]}", "allOf", sa, sb);
            json_object_set_new(props, name, both);
        }
    }
    if (!props) {
        fail(c, BN_ERR_NOMEM, path, ": out of memory");
        return false;
    }
    if (json_object_size(props)) json_object_set(out, "properties", props);
    else json_object_del(out, "properties");
    json_decref(props);
    const json_t *xa = json_object_get(a, "additionalProperties"), *xb = json_object_get(b, "additionalProperties");
    if (xa || xb) {
        json_t *x = !xa ? json_deep_copy(xb) : !xb ? json_deep_copy(xa)
                  : json_is_false(xa) || json_is_false(xb) ? json_false()
                  : json_equal(xa, xb) ? json_deep_copy(xa) : json_pack("{s:[O,O]}", "allOf", xa, xb);
        json_object_set_new(out, "additionalProperties", x);
    }
    return true;
}

/* a and b as one schema (allOf), or NULL with the conflict recorded. */
static json_t *merge(ctx *c, const json_t *a, const json_t *b, const char *path) {
    if (json_is_true(b) || (json_is_object(b) && json_object_size(b) == 0)) return json_deep_copy(a);
    if (!json_is_object(a) || !json_is_object(b)) {
        fail(c, BN_ERR_UNSUPPORTED, path, ".allOf: only object schemas can be combined");
        return NULL;
    }
    json_t *out = json_deep_copy(a);
    const char *k;
    json_t *vb;
    json_object_foreach((json_t *)b, k, vb) {
        json_t *va = json_object_get(out, k);
        if (!strcmp(k, "properties") || !strcmp(k, "additionalProperties")) {
            continue; /* below, together */
        } else if (!va) {
            json_object_set(out, k, vb);
        } else if (json_equal(va, vb) || is_annotation(k)) {
            continue;
        } else if (!strcmp(k, "required") && json_is_array(va) && json_is_array(vb)) {
            for (size_t i = 0; i < json_array_size(vb); i++) {
                bool seen = false;
                for (size_t j = 0; j < json_array_size(va); j++) seen |= json_equal(json_array_get(va, j), json_array_get(vb, i));
                if (!seen) json_array_append(va, json_array_get(vb, i));
            }
        } else if (!strcmp(k, "type")) {
            json_t *ta = types_array(va), *tb = types_array(vb), *both = json_array();
            for (size_t i = 0; i < json_array_size(ta); i++)
                for (size_t j = 0; j < json_array_size(tb); j++) {
                    const char *x = json_string_value(json_array_get(ta, i)), *y = json_string_value(json_array_get(tb, j));
                    if (!x || !y) continue;
                    if (!strcmp(x, y) || (!strcmp(x, "integer") && !strcmp(y, "number"))) json_array_append_new(both, json_string(x));
                    else if (!strcmp(x, "number") && !strcmp(y, "integer")) json_array_append_new(both, json_string(y));
                }
            json_decref(ta);
            json_decref(tb);
            if (json_array_size(both) == 0) {
                json_decref(both);
                json_decref(out);
                fail(c, BN_ERR_INVALID, path, ".allOf: the types exclude each other");
                return NULL;
            }
            json_object_set_new(out, k, both);
        } else if ((in_list(k, min_like) || in_list(k, max_like)) && json_is_number(va) && json_is_number(vb)) {
            bool take_b = in_list(k, min_like) ? json_number_value(vb) > json_number_value(va)
                                               : json_number_value(vb) < json_number_value(va);
            if (take_b) json_object_set(out, k, vb);
        } else if (!strcmp(k, "enum") && json_is_array(va) && json_is_array(vb)) {
            json_t *both = json_array();
            for (size_t i = 0; i < json_array_size(va); i++)
                for (size_t j = 0; j < json_array_size(vb); j++)
                    if (json_equal(json_array_get(va, i), json_array_get(vb, j))) json_array_append(both, json_array_get(va, i));
            json_object_set_new(out, k, both);
        } else if (!strcmp(k, "items")) {
            if (json_is_false(va) || json_is_false(vb)) json_object_set_new(out, k, json_false());
            else json_object_set_new(out, k, json_pack("{s:[O,O]}", "allOf", va, vb));
        } else {
            json_decref(out);
            fail(c, BN_ERR_UNSUPPORTED, path, ".allOf: conflicting values for \"%s\"", k);
            return NULL;
        }
    }
    return merge_properties(c, out, a, b, path) ? out : (json_decref(out), NULL);
}

static json_t *without(const json_t *s, const char *const *keys) {
    json_t *copy = json_copy((json_t *)s);
    for (; copy && *keys; keys++) json_object_del(copy, *keys);
    return copy;
}

static bool only_annotations(const json_t *s) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)s, k, v)
        if (!is_annotation(k)) return false;
    return true;
}

/* The rule of a local reference, made once (recursion refers to it while it is being built). */
static int ref_rule(ctx *c, const char *ref, const char *path, int depth) {
    char key[600];
    snprintf(key, sizeof key, "%s%.500s", c->ref_prefix, ref);
    const json_t *known = json_object_get(c->refs, key);
    if (known) return (int)json_integer_value(known);
    const json_t *target = resolve(c->doc, ref);
    if (!target) return fail(c, BN_ERR_INVALID, path, ".$ref: \"%.100s\" does not point into this schema", ref);
    int r = bn_grammar_fresh_rule(c->b, "ref");
    if (r < 0) return -1;
    json_object_set_new(c->refs, key, json_integer(r));
    char sub[512];
    snprintf(sub, sizeof sub, "%.300s", ref);
    int body = compile(c, target, sub, depth + 1);
    if (body < 0) return -1;
    bn_grammar_add_ref(c->b, bn_grammar_alt(c->b, r), body);
    return r;
}

static const struct { const char *key; const char *unless; } unsupported[] = {
    {"not", NULL}, {"if", NULL}, {"then", NULL}, {"else", NULL}, {"patternProperties", NULL},
    {"propertyNames", NULL}, {"dependentRequired", NULL}, {"dependentSchemas", NULL}, {"dependencies", NULL},
    {"unevaluatedProperties", NULL}, {"unevaluatedItems", NULL}, {"contains", NULL}, {"minContains", NULL},
    {"maxContains", NULL}, {"multipleOf", NULL}, {"uniqueItems", "false"}, {"$dynamicRef", NULL},
    {"$recursiveRef", NULL}};

static int compile(ctx *c, const json_t *s, const char *path, int depth) {
    if (bn_grammar_builder_failed(c->b)) return -1;
    if (depth > MAX_SCHEMA_DEPTH) return fail(c, BN_ERR_UNSUPPORTED, path, ": nested deeper than %d levels", MAX_SCHEMA_DEPTH);
    if (json_is_true(s)) return value_rule(c);
    if (json_is_false(s)) return fail(c, BN_ERR_INVALID, path, ": the schema false accepts nothing");
    if (!json_is_object(s)) return fail(c, BN_ERR_INVALID, path, ": a schema must be an object or a boolean");
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        const json_t *v = json_object_get(s, unsupported[i].key);
        if (v && !(unsupported[i].unless && json_is_false(v)))
            return fail(c, BN_ERR_UNSUPPORTED, path, ".%s: keyword not supported", unsupported[i].key);
    }
    char sub[512];
    const json_t *all = json_object_get(s, "allOf");
    if (all) {
        if (!json_is_array(all) || json_array_size(all) == 0) return fail(c, BN_ERR_INVALID, path, ".allOf: must be a non-empty array");
        json_t *merged = without(s, (const char *const[]){"allOf", NULL});
        for (size_t i = 0; merged && i < json_array_size(all); i++) {
            snprintf(sub, sizeof sub, "%s.allOf[%zu]", path, i);
            const json_t *part = deref(c, json_array_get(all, i), sub);
            json_t *next = part ? merge(c, merged, part, path) : NULL;
            json_decref(merged);
            merged = next;
        }
        int r = merged ? compile(c, merged, path, depth + 1) : -1;
        json_decref(merged);
        return r;
    }
    const json_t *ref = json_object_get(s, "$ref");
    if (ref) {
        const char *text = json_string_value(ref);
        if (!text) return fail(c, BN_ERR_INVALID, path, ".$ref: must be a string");
        if (text[0] != '#') return fail(c, BN_ERR_UNSUPPORTED, path, ".$ref: only local references (\"#...\") are supported");
        json_t *rest = without(s, (const char *const[]){"$ref", NULL});
        int r;
        if (!rest || only_annotations(rest)) {
            r = ref_rule(c, text, path, depth);
        } else {
            const json_t *target = deref(c, s, path);
            json_t *merged = target ? merge(c, rest, target, path) : NULL;
            r = merged ? compile(c, merged, path, depth + 1) : -1;
            json_decref(merged);
        }
        json_decref(rest);
        return r;
    }
    const json_t *any = json_object_get(s, "anyOf");
    const char *any_key = "anyOf";
    if (json_object_get(s, "oneOf")) {
        if (any) return fail(c, BN_ERR_UNSUPPORTED, path, ".oneOf: together with anyOf is not supported");
        any = json_object_get(s, "oneOf");
        any_key = "oneOf";
    }
    if (any) {
        if (!json_is_array(any) || json_array_size(any) == 0)
            return fail(c, BN_ERR_INVALID, path, ".%s: must be a non-empty array", any_key);
        json_t *base = without(s, (const char *const[]){"anyOf", "oneOf", NULL});
        int r = bn_grammar_fresh_rule(c->b, any_key);
        for (size_t i = 0; r >= 0 && i < json_array_size(any); i++) {
            snprintf(sub, sizeof sub, "%s.%s[%zu]", path, any_key, i);
            const json_t *branch = json_array_get(any, i);
            int br;
            if (!base || only_annotations(base)) {
                br = compile(c, branch, sub, depth + 1);
            } else {
                const json_t *target = deref(c, branch, sub);
                json_t *merged = target ? merge(c, base, target, sub) : NULL;
                br = merged ? compile(c, merged, sub, depth + 1) : -1;
                json_decref(merged);
            }
            if (br < 0) r = -1;
            else bn_grammar_add_ref(c->b, bn_grammar_alt(c->b, r), br);
        }
        json_decref(base);
        return r;
    }
    unsigned types = schema_types(c, s, path);
    if (!types) return -1;
    if (json_object_get(s, "enum") || json_object_get(s, "const")) return enum_schema(c, s, path, types);
    if (types == T_ANY && only_annotations(s)) return value_rule(c);
    if ((types & T_INTEGER) && (types & T_NUMBER)) types &= ~(unsigned)T_INTEGER;
    int r = bn_grammar_fresh_rule(c->b, "schema");
    for (unsigned bit = 1; r >= 0 && bit <= T_NULL; bit <<= 1) {
        if (!(types & bit)) continue;
        int t;
        switch (bit) {
        case T_OBJECT: t = object_schema(c, s, path, depth); break;
        case T_ARRAY: t = array_schema(c, s, path, depth); break;
        case T_STRING: t = string_schema(c, s, path); break;
        case T_NUMBER: t = number_schema(c, s, path); break;
        case T_INTEGER: t = integer_schema(c, s, path); break;
        case T_BOOLEAN:
            t = bn_grammar_fresh_rule(c->b, "boolean");
            bn_grammar_add_literal(c->b, bn_grammar_alt(c->b, t), "true", 4);
            bn_grammar_add_literal(c->b, bn_grammar_alt(c->b, t), "false", 5);
            break;
        default: t = rule_of_literal(c, "null"); break;
        }
        if (t < 0) return -1;
        bn_grammar_add_ref(c->b, bn_grammar_alt(c->b, r), t);
    }
    return r;
}

/* ---------------------------------------------------------------- entry points */

static void ctx_init(ctx *c, bn_grammar_builder *b) {
    memset(c, 0, sizeof *c);
    c->b = b;
    c->ref_prefix = "";
    c->ws = c->value = c->string = c->str_char = c->integer = c->number = c->digit = c->frac = -1;
    c->refs = json_object();
    if (!c->refs) bn_grammar_builder_fail(b, BN_ERR_NOMEM, "out of memory");
}

/* Compiles schema text as the parameters or response schema at `path`; -1 on error. */
static int compile_text(ctx *c, const char *text, const char *path, json_t **doc_out) {
    json_error_t jerr;
    json_t *doc = json_loads(text, JSON_DECODE_ANY, &jerr);
    *doc_out = doc;
    if (!doc) return fail(c, BN_ERR_INVALID, path, ": invalid JSON: %s", jerr.text);
    c->doc = doc;
    return compile(c, doc, path, 0);
}

bn_status bn_json_schema_grammar(bn_grammar **out, const char *schema_json, bn_error *err) {
    *out = NULL;
    bn_grammar_builder *b;
    bn_status st = bn_grammar_builder_new(&b, err);
    if (st) return st;
    ctx c;
    ctx_init(&c, b);
    json_t *doc = NULL;
    int root = bn_grammar_rule(b, "root");
    int body;
    if (!schema_json) {
        body = list_rule(&c, "object", '{', '}', kv_rule(&c, string_rule(&c), value_rule(&c)), 0, -1);
    } else {
        body = compile_text(&c, schema_json, "schema", &doc);
    }
    if (body >= 0) bn_grammar_add_ref(b, bn_grammar_alt(b, root), body);
    else if (!bn_grammar_builder_failed(b)) bn_grammar_builder_fail(b, BN_ERR_INVALID, "schema: cannot be compiled");
    st = bn_grammar_builder_finish(b, root, out, err);
    json_decref(doc);
    json_decref(c.refs);
    return st;
}

bn_status bn_json_tool_call_grammar(bn_grammar **out, const char *const *names, const char *const *schemas,
                                    size_t n, bn_error *err) {
    *out = NULL;
    if (n == 0 || n > MAX_TOOLS) return bn_error_set(err, BN_ERR_INVALID, "tools: needs 1 to %d functions", MAX_TOOLS);
    bn_grammar_builder *b;
    bn_status st = bn_grammar_builder_new(&b, err);
    if (st) return st;
    ctx c;
    ctx_init(&c, b);
    int root = bn_grammar_rule(b, "root");
    for (size_t i = 0; i < n && !bn_grammar_builder_failed(b); i++) {
        char path[96], prefix[32];
        snprintf(path, sizeof path, "tools[%zu].function.parameters", i);
        snprintf(prefix, sizeof prefix, "%zu:", i);
        c.ref_prefix = prefix;
        json_t *doc = NULL;
        int args;
        if (schemas[i]) {
            args = compile_text(&c, schemas[i], path, &doc);
            const char *type = json_string_value(json_object_get(doc, "type"));
            if (args >= 0 && (!json_is_object(doc) || (json_object_get(doc, "type") && (!type || strcmp(type, "object")))))
                args = fail(&c, BN_ERR_INVALID, path, ": must be a schema of type object");
        } else {
            args = list_rule(&c, "object", '{', '}', kv_rule(&c, string_rule(&c), value_rule(&c)), 0, -1);
        }
        json_t *name = json_string(names[i] ? names[i] : "");
        char *esc = name ? json_dumps(name, JSON_ENCODE_ANY) : NULL;
        json_decref(name);
        if (args >= 0 && esc) {
            int a = bn_grammar_alt(b, root);
            bn_grammar_add_literal(b, a, "{\"name\":", 8);
            bn_grammar_add_literal(b, a, esc, strlen(esc));
            bn_grammar_add_literal(b, a, ",\"arguments\":", 13);
            bn_grammar_add_ref(b, a, args);
            bn_grammar_add_ref(b, a, ws_rule(&c));
            bn_grammar_add_literal(b, a, "}", 1);
        } else if (!esc) {
            bn_grammar_builder_fail(b, BN_ERR_NOMEM, "out of memory");
        }
        free(esc);
        json_decref(doc);
        c.doc = NULL;
    }
    st = bn_grammar_builder_finish(b, root, out, err);
    json_decref(c.refs);
    return st;
}
