/*
 * option_parser.c: the option loop of every command (see option_parser.h): spelling lookup over
 * the command's tables, `--opt=value` and glued short values, `--`, environment defaults, help
 * text generated from the tables, and the nearest-name suggestion for a mistyped option.
 */
#include "cli/option_parser.h"

#include "cli/commands.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define HELP_COLUMN 25 /* option text starts here: "  -n, --n-predict N      text" */

static bool in_mask(const bn_cli_option *o, unsigned mask) { return !mask || !o->group || (o->group & mask); }

/* Calls fn on each spelling of o->names ("-n|--n-predict"); stops when fn returns true. */
static bool each_name(const bn_cli_option *o, bool (*fn)(const char *name, size_t len, void *ctx), void *ctx) {
    const char *p = o->names;
    while (*p) {
        size_t len = strcspn(p, "|");
        if (fn(p, len, ctx)) return true;
        p += len;
        if (*p == '|') p++;
    }
    return false;
}

typedef struct match_ctx {
    const char *given;
    size_t given_len;
    size_t matched_len; /* prefix mode: the spelling's length */
    bool prefix;        /* match a spelling that is a prefix of given (glued short value) */
} match_ctx;

static bool name_matches(const char *name, size_t len, void *ctx) {
    match_ctx *m = ctx;
    if (m->prefix) {
        /* "-n3": a single-dash spelling followed by the value */
        if (len < 2 || name[1] == '-' || len >= m->given_len || strncmp(m->given, name, len)) return false;
        if (len <= m->matched_len) return false;
        m->matched_len = len;
        return false; /* keep looking for a longer one */
    }
    return len == m->given_len && !strncmp(name, m->given, len);
}

/* The option spelled exactly `given` (first len bytes), or NULL; *group_index says whose. */
static const bn_cli_option *find_exact(const bn_cli_group *groups, int n_groups, const char *given, size_t len,
                                       int *group_index) {
    for (int g = 0; g < n_groups; g++)
        for (const bn_cli_option *o = groups[g].options; o && o->names; o++) {
            if (!in_mask(o, groups[g].mask)) continue;
            match_ctx m = {given, len, 0, false};
            if (each_name(o, name_matches, &m)) {
                *group_index = g;
                return o;
            }
        }
    return NULL;
}

/* "-n3" / "-c2048" / "-ngl99": the longest single-dash spelling with a value that starts `given`. */
static const bn_cli_option *find_glued(const bn_cli_group *groups, int n_groups, const char *given,
                                       int *group_index, size_t *name_len) {
    const bn_cli_option *best = NULL;
    size_t best_len = 0;
    for (int g = 0; g < n_groups; g++)
        for (const bn_cli_option *o = groups[g].options; o && o->names; o++) {
            if (!o->metavar || !in_mask(o, groups[g].mask)) continue;
            match_ctx m = {given, strlen(given), best_len, true};
            each_name(o, name_matches, &m);
            if (m.matched_len > best_len) {
                best = o;
                best_len = m.matched_len;
                *group_index = g;
            }
        }
    *name_len = best_len;
    return best;
}

/* The long spelling of o ("--n-predict"), else its first; written to out. */
static void display_name(char *out, size_t size, const bn_cli_option *o) {
    const char *p = o->names, *pick = o->names;
    size_t pick_len = strcspn(p, "|");
    while (*p) {
        size_t len = strcspn(p, "|");
        if (len > 2 && p[0] == '-' && p[1] == '-') {
            pick = p;
            pick_len = len;
            break;
        }
        p += len;
        if (*p == '|') p++;
    }
    snprintf(out, size, "%.*s", (int)pick_len, pick);
}

/* ---- nearest name ---- */

static size_t edit_distance(const char *a, size_t na, const char *b, size_t nb) {
    size_t row[128];
    if (nb >= sizeof row / sizeof row[0]) return (size_t)-1;
    for (size_t j = 0; j <= nb; j++) row[j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t diagonal = row[0];
        row[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t above = row[j];
            size_t cost = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
            size_t best = diagonal + cost;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            if (above + 1 < best) best = above + 1;
            row[j] = best;
            diagonal = above;
        }
    }
    return row[nb];
}

typedef struct nearest_ctx {
    const char *given; /* without its dashes */
    size_t given_len;
    size_t best;
    char *out;
    size_t size;
} nearest_ctx;

static bool consider_name(const char *name, size_t len, void *ctx) {
    nearest_ctx *n = ctx;
    size_t dashes = 0;
    while (dashes < len && name[dashes] == '-') dashes++;
    size_t d = edit_distance(n->given, n->given_len, name + dashes, len - dashes);
    if (d < n->best) {
        n->best = d;
        snprintf(n->out, n->size, "%.*s", (int)len, name);
    }
    return false;
}

bool bn_cli_nearest_name(char *out, size_t size, const char *given, const bn_cli_group *groups, int n_groups) {
    while (*given == '-') given++;
    size_t len = strcspn(given, "=");
    if (len == 0 || len > 100) return false;
    nearest_ctx n = {given, len, (size_t)-1, out, size};
    for (int g = 0; g < n_groups; g++)
        for (const bn_cli_option *o = groups[g].options; o && o->names; o++)
            if (in_mask(o, groups[g].mask)) each_name(o, consider_name, &n);
    /* close enough: at most a third of the letters wrong (and at least one allowed) */
    size_t allowed = len / 3 > 1 ? len / 3 : 1;
    return n.best <= allowed;
}

/* ---- help ---- */

static void print_option(FILE *out, const bn_cli_option *o) {
    char head[160];
    size_t n = 0;
    const char *p = o->names;
    while (*p && n + 1 < sizeof head) {
        size_t len = strcspn(p, "|");
        n += (size_t)snprintf(head + n, sizeof head - n, "%s%.*s", n ? ", " : "", (int)len, p);
        p += len;
        if (*p == '|') p++;
    }
    if (o->metavar && n + 1 < sizeof head) {
        bool optional = o->flags & BN_OPT_OPTIONAL;
        n += (size_t)snprintf(head + n, sizeof head - n, optional ? " [%s]" : " %s", o->metavar);
    }
    fprintf(out, "  %s", head);
    size_t column = 2 + strlen(head);
    const char *text = o->help ? o->help : "";
    if (column + 1 > HELP_COLUMN) {
        fputc('\n', out);
        column = 0;
    }
    fprintf(out, "%*s", (int)(HELP_COLUMN - column), "");
    for (const char *t = text; *t; t++) {
        fputc(*t, out);
        if (*t == '\n' && t[1]) fprintf(out, "%*s", HELP_COLUMN, "");
    }
    fputc('\n', out);
}

void bn_cli_print_options(FILE *out, const bn_cli_option *options, unsigned mask) {
    for (const bn_cli_option *o = options; o && o->names; o++)
        if (!(o->flags & BN_OPT_HIDDEN) && in_mask(o, mask)) print_option(out, o);
}

void bn_cli_print_help(FILE *out, const bn_cli_spec *spec, const bn_cli_group *groups, int n_groups) {
    fprintf(out, "usage: bitnet %s %s\n", spec->name, spec->synopsis);
    if (spec->about) fprintf(out, "\n%s", spec->about);
    for (int g = 0; g < n_groups; g++) {
        fprintf(out, "\n%s:\n", groups[g].title);
        bn_cli_print_options(out, groups[g].options, groups[g].mask);
        if (g == 0) fprintf(out, "  -h, --help             show this help\n");
    }
    if (spec->notes) fprintf(out, "\n%s", spec->notes);
}

int bn_cli_usage_error(const char *command, const char *synopsis, bn_error *err) {
    fprintf(stderr, "bitnet %s: %s\n", command, err->message);
    fprintf(stderr, "usage: bitnet %s %s\n`bitnet %s --help` describes the options.\n", command, synopsis, command);
    bn_error_clear(err);
    return BN_EXIT_USAGE;
}

/* ---- completion lists ---- */

typedef struct list_ctx {
    FILE *out;
    int count;
} list_ctx;

static bool write_name(const char *name, size_t len, void *ctx) {
    list_ctx *l = ctx;
    fprintf(l->out, "%s%.*s", l->count++ ? " " : "", (int)len, name);
    return false;
}

int bn_cli_list_names(FILE *out, const bn_cli_option *options, unsigned mask, int with_values) {
    list_ctx l = {out, 0};
    for (const bn_cli_option *o = options; o && o->names; o++) {
        if (!in_mask(o, mask)) continue;
        if (with_values >= 0 && (o->metavar && !(o->flags & BN_OPT_OPTIONAL)) != (with_values != 0)) continue;
        each_name(o, write_name, &l);
    }
    return l.count;
}

/* ---- the loop ---- */

static bool looks_like_number(const char *a) {
    return a[0] == '-' && (isdigit((unsigned char)a[1]) || (a[1] == '.' && isdigit((unsigned char)a[2])));
}

static bool is_choice(const char *choices, const char *value) {
    if (!choices) return false;
    size_t len = strlen(value);
    for (const char *p = choices; *p;) {
        size_t n = strcspn(p, "|");
        if (n == len && !strncmp(p, value, n)) return true;
        p += n;
        if (*p == '|') p++;
    }
    return false;
}

static int apply(const bn_cli_spec *spec, const bn_cli_group *group, const bn_cli_option *o, const char *name,
                 const char *value, bn_error *err) {
    bn_cli_parse r = group->apply(group->state, o, name, value, err);
    if (r == BN_CLI_CONSUMED) return -1;
    if (r == BN_CLI_NOT_MINE) bn_error_set(err, BN_ERR_INVALID, "option %s is not handled (a bug)", name);
    return bn_cli_usage_error(spec->name, spec->synopsis, err);
}

/* BITNET_<LONG NAME> for every option with a value, before the command line. */
static int apply_environment(const bn_cli_spec *spec, const bn_cli_group *groups, int n_groups, bn_error *err) {
    for (int g = 0; g < n_groups; g++)
        for (const bn_cli_option *o = groups[g].options; o && o->names; o++) {
            if (!o->metavar || (o->flags & BN_OPT_OPTIONAL) || !in_mask(o, groups[g].mask)) continue;
            char name[64], var[96];
            display_name(name, sizeof name, o);
            if (strncmp(name, "--", 2) != 0) continue;
            size_t n = (size_t)snprintf(var, sizeof var, "%s", spec->env_prefix);
            for (const char *p = name + 2; *p && n + 1 < sizeof var; p++)
                var[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
            var[n] = '\0';
            const char *v = getenv(var);
            if (!v || !*v) continue;
            int rc = apply(spec, &groups[g], o, name, v, err);
            if (rc >= 0) return rc;
        }
    return -1;
}

int bn_cli_parse_options(const bn_cli_spec *spec, const bn_cli_group *groups, int n_groups, int argc,
                         char **argv, bn_error *err) {
    if (spec->env_prefix) {
        int rc = apply_environment(spec, groups, n_groups, err);
        if (rc >= 0) return rc;
    }
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options_done || a[0] != '-' || a[1] == '\0' || looks_like_number(a)) {
            if (!spec->arguments) {
                bn_error_set(err, BN_ERR_INVALID, "unexpected argument '%s' (options start with '-')", a);
                return bn_cli_usage_error(spec->name, spec->synopsis, err);
            }
            int rc = apply(spec, &groups[0], NULL, a, a, err);
            if (rc >= 0) return rc;
            continue;
        }
        if (!strcmp(a, "--")) {
            options_done = true;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            bn_cli_print_help(stdout, spec, groups, n_groups);
            return BN_EXIT_OK;
        }
        const char *eq = a[1] == '-' ? strchr(a, '=') : NULL;
        size_t name_len = eq ? (size_t)(eq - a) : strlen(a);
        const char *value = eq ? eq + 1 : NULL;
        int g = 0;
        const bn_cli_option *o = find_exact(groups, n_groups, a, name_len, &g);
        if (!o && a[1] != '-') {
            /* a glued value is a number ("-n3", "-c2048", "-t-1"): "-temp" is a mistyped option,
             * not -t with the value "emp" */
            o = find_glued(groups, n_groups, a, &g, &name_len);
            if (o && !looks_like_number(a + name_len) && !isdigit((unsigned char)a[name_len]) && a[name_len] != '.') o = NULL;
            if (o) value = a + name_len;
            else name_len = strlen(a);
        }
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)name_len, a);
        if (!o) {
            char near[64];
            if (bn_cli_nearest_name(near, sizeof near, a, groups, n_groups))
                bn_error_set(err, BN_ERR_INVALID, "unknown option '%s' (did you mean %s?)", name, near);
            else
                bn_error_set(err, BN_ERR_INVALID, "unknown option '%s'", name);
            return bn_cli_usage_error(spec->name, spec->synopsis, err);
        }
        if (o->metavar && !(o->flags & BN_OPT_OPTIONAL) && !value) {
            if (i + 1 >= argc) {
                bn_error_set(err, BN_ERR_INVALID, "option %s needs a value (%s)", name, o->metavar);
                return bn_cli_usage_error(spec->name, spec->synopsis, err);
            }
            value = argv[++i];
        } else if ((o->flags & BN_OPT_OPTIONAL) && !value && i + 1 < argc && is_choice(o->choices, argv[i + 1])) {
            value = argv[++i];
        } else if (!o->metavar && value) {
            bn_error_set(err, BN_ERR_INVALID, "option %s takes no value (got '%s')", name, value);
            return bn_cli_usage_error(spec->name, spec->synopsis, err);
        }
        int rc = apply(spec, &groups[g], o, name, value, err);
        if (rc >= 0) return rc;
    }
    return -1;
}
