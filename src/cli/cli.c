/* ewald CLI: options, config files, help and JSON output. */
#include "cli/cli.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Strings read from config files live until exit. */
static char **cfg_strings;
static size_t cfg_nstrings, cfg_cap;

static void free_cfg_strings(void)
{
    for (size_t i = 0; i < cfg_nstrings; i++) free(cfg_strings[i]);
    free(cfg_strings);
    cfg_strings = NULL;
    cfg_nstrings = cfg_cap = 0;
}

static const char *keep_string(const char *s)
{
    static int registered;
    if (!registered) {
        atexit(free_cfg_strings);
        registered = 1;
    }
    if (ew_grow((void **)&cfg_strings, &cfg_cap, cfg_nstrings + 1, sizeof *cfg_strings) != EW_OK) return NULL;
    char *d = ew_strdup(s);
    if (d) cfg_strings[cfg_nstrings++] = d;
    return d;
}

int ew_cli_fail(void)
{
    fprintf(stderr, "ewald: %s\n", ew_error_message());
    return 1;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

/* Set an option from text; `where` names the source for messages. */
static ew_status_t set_value(ew_opt_t *o, const char *val, const char *where)
{
    char *end;
    switch (o->type) {
    case EW_OPT_FLAG: {
        int v;
        if (!val || !strcmp(val, "1") || !strcmp(val, "true") || !strcmp(val, "yes") || !strcmp(val, "on"))
            v = 1;
        else if (!strcmp(val, "0") || !strcmp(val, "false") || !strcmp(val, "no") || !strcmp(val, "off"))
            v = 0;
        else
            return ew_fail(EW_ERR_ARG, "%s: '%s' expects true or false, got '%s'", where, o->name, val);
        *(int *)o->dest = v;
        return EW_OK;
    }
    case EW_OPT_INT: {
        errno = 0;
        long v = strtol(val, &end, 10);
        if (errno || end == val || *trim(end))
            return ew_fail(EW_ERR_ARG, "%s: '%s' expects an integer, got '%s'", where, o->name, val);
        if (o->min < o->max && (v < o->min || v > o->max))
            return ew_fail(EW_ERR_ARG, "%s: '%s' = %ld is outside [%g, %g]", where, o->name, v, o->min, o->max);
        *(long *)o->dest = v;
        return EW_OK;
    }
    case EW_OPT_U64: {
        errno = 0;
        if (val[0] == '-')
            return ew_fail(EW_ERR_ARG, "%s: '%s' expects a non-negative integer, got '%s'", where, o->name, val);
        unsigned long long v = strtoull(val, &end, 10);
        if (errno || end == val || *trim(end))
            return ew_fail(EW_ERR_ARG, "%s: '%s' expects a non-negative integer, got '%s'", where, o->name, val);
        if (o->min < o->max && ((double)v < o->min || (double)v > o->max))
            return ew_fail(EW_ERR_ARG, "%s: '%s' = %llu is outside [%g, %g]", where, o->name, v, o->min, o->max);
        *(uint64_t *)o->dest = v;
        return EW_OK;
    }
    case EW_OPT_DOUBLE: {
        errno = 0;
        double v = strtod(val, &end);
        if (errno || end == val || *trim(end) || !isfinite(v))
            return ew_fail(EW_ERR_ARG, "%s: '%s' expects a number, got '%s'", where, o->name, val);
        if (o->min < o->max && (v < o->min || v > o->max))
            return ew_fail(EW_ERR_ARG, "%s: '%s' = %g is outside [%g, %g]", where, o->name, v, o->min, o->max);
        *(double *)o->dest = v;
        return EW_OK;
    }
    case EW_OPT_STRING:
        *(const char **)o->dest = val;
        return EW_OK;
    case EW_OPT_CHOICE: {
        size_t n = strlen(val);
        for (const char *c = o->choices; c && *c;) {
            const char *bar = strchr(c, '|');
            size_t len = bar ? (size_t)(bar - c) : strlen(c);
            if (len == n && !strncmp(c, val, n)) {
                *(const char **)o->dest = val;
                return EW_OK;
            }
            c = bar ? bar + 1 : NULL;
        }
        return ew_fail(EW_ERR_ARG, "%s: '%s' must be one of %s, got '%s'", where, o->name, o->choices, val);
    }
    }
    return ew_fail(EW_ERR_INTERNAL, "option %s has an unknown type", o->name);
}

static int same_section(const char *a, const char *b)
{
    if (!a || !*a) return !b || !*b;
    return b && !strcmp(a, b);
}

static ew_status_t read_config(const char *path, ew_opt_t *opts, int *given)
{
    FILE *f = fopen(path, "r");
    if (!f) return ew_fail(EW_ERR_IO, "%s: cannot open config file: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    char section[128] = "";
    long lineno = 0;
    ew_status_t st = EW_OK;
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        char where[512];
        snprintf(where, sizeof where, "%s:%ld", path, lineno);
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *s = trim(line);
        if (!*s) continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (!close || *trim(close + 1)) {
                st = ew_fail(EW_ERR_FORMAT, "%s: malformed section header '%s'", where, s);
                break;
            }
            *close = '\0';
            snprintf(section, sizeof section, "%s", trim(s + 1));
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) {
            st = ew_fail(EW_ERR_FORMAT, "%s: expected 'key = value', got '%s'", where, s);
            break;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        size_t vlen = strlen(val);
        if (vlen >= 2 && ((val[0] == '"' && val[vlen - 1] == '"') || (val[0] == '\'' && val[vlen - 1] == '\''))) {
            val[vlen - 1] = '\0';
            val++;
        }
        int found = -1;
        for (int i = 0; opts && opts[i].name; i++)
            if (!strcmp(opts[i].name, key) && same_section(opts[i].section, section)) found = i;
        if (found < 0) {
            if (section[0])
                st = ew_fail(EW_ERR_ARG, "%s: unknown key '%s' in section [%s]", where, key, section);
            else
                st = ew_fail(EW_ERR_ARG, "%s: unknown key '%s'", where, key);
            break;
        }
        const char *kept = keep_string(val);
        if (!kept) {
            st = EW_ERR_NOMEM;
            break;
        }
        st = set_value(&opts[found], kept, where);
        if (st != EW_OK) break;
        given[found] = 1;
    }
    free(line);
    fclose(f);
    return st;
}

enum { OPT_HELP = 1000, OPT_CONFIG, OPT_JSON, OPT_QUIET, OPT_VERBOSE, OPT_BASE = 2000 };

ew_status_t ew_cli_parse(int argc, char **argv, const ew_cmd_info_t *info, ew_opt_t *opts, int *json,
                         char ***pos, int *npos, int *exit_now)
{
    *exit_now = 0;
    *npos = 0;
    *pos = NULL;
    int nopts = 0;
    while (opts && opts[nopts].name) nopts++;
    struct option *lo = calloc((size_t)nopts + 6, sizeof *lo);
    int *given = calloc((size_t)nopts + 1, sizeof *given);
    if (!lo || !given) {
        free(lo);
        free(given);
        return ew_fail(EW_ERR_NOMEM, "out of memory parsing options");
    }
    char shorts[128] = "hc:qv";
    size_t ns = strlen(shorts);
    for (int i = 0; i < nopts; i++) {
        lo[i].name = opts[i].name;
        lo[i].has_arg = opts[i].type == EW_OPT_FLAG ? no_argument : required_argument;
        lo[i].val = OPT_BASE + i;
        if (opts[i].short_name && ns + 3 < sizeof shorts) {
            shorts[ns++] = opts[i].short_name;
            if (opts[i].type != EW_OPT_FLAG) shorts[ns++] = ':';
            shorts[ns] = '\0';
        }
    }
    struct option fixed[] = {{"help", no_argument, 0, OPT_HELP},       {"config", required_argument, 0, OPT_CONFIG},
                             {"json", no_argument, 0, OPT_JSON},       {"quiet", no_argument, 0, OPT_QUIET},
                             {"verbose", no_argument, 0, OPT_VERBOSE}, {0, 0, 0, 0}};
    memcpy(lo + nopts, fixed, sizeof fixed);

    ew_status_t st = EW_OK;
    /* Pass 1: find --help and the config file, so the command line can
     * override the file whatever the order of arguments. */
    const char *config = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) break;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            ew_cli_print_help(info, opts);
            *exit_now = 1;
            goto done;
        }
        if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) && i + 1 < argc) config = argv[i + 1];
        if (!strncmp(argv[i], "--config=", 9)) config = argv[i] + 9;
    }
    if (config && (st = read_config(config, opts, given)) != EW_OK) goto done;

    /* Pass 2: the command line. */
    optind = 0;
    opterr = 0;
    int c, li;
    while ((c = getopt_long(argc, argv, shorts, lo, &li)) != -1) {
        if (c == OPT_HELP || c == 'h') continue;
        if (c == OPT_CONFIG || c == 'c') continue;
        if (c == OPT_JSON) {
            if (json) *json = 1;
            continue;
        }
        if (c == OPT_QUIET || c == 'q') {
            ew_log_set_level(EW_LOG_WARN);
            continue;
        }
        if (c == OPT_VERBOSE || c == 'v') {
            ew_log_set_level(EW_LOG_DEBUG);
            continue;
        }
        if (c == '?' || c == ':') {
            const char *bad = argv[optind - 1];
            if (optopt && c == ':')
                st = ew_fail(EW_ERR_ARG, "option '%s' needs a value (see --help)", bad);
            else
                st = ew_fail(EW_ERR_ARG, "unknown option '%s' (see --help)", bad);
            goto done;
        }
        int idx = -1;
        if (c >= OPT_BASE && c < OPT_BASE + nopts) idx = c - OPT_BASE;
        for (int i = 0; idx < 0 && i < nopts; i++)
            if (opts[i].short_name == c) idx = i;
        if (idx < 0) {
            st = ew_fail(EW_ERR_INTERNAL, "unhandled option code %d", c);
            goto done;
        }
        char where[96];
        snprintf(where, sizeof where, "option --%s", opts[idx].name);
        if ((st = set_value(&opts[idx], optarg, where)) != EW_OK) goto done;
        given[idx] = 1;
    }
    for (int i = 0; i < nopts; i++)
        if (opts[i].required && !given[i]) {
            st = ew_fail(EW_ERR_ARG, "missing required option --%s (%s)", opts[i].name, opts[i].help);
            goto done;
        }
    *pos = argv + optind;
    *npos = argc - optind;
    if (info && (*npos < info->min_positional || (info->max_positional >= 0 && *npos > info->max_positional))) {
        if (info->min_positional == info->max_positional)
            st = ew_fail(EW_ERR_ARG, "expected %d argument%s, got %d; usage: %s", info->min_positional,
                         info->min_positional == 1 ? "" : "s", *npos, info->usage);
        else
            st = ew_fail(EW_ERR_ARG, "wrong number of arguments (%d); usage: %s", *npos, info->usage);
    }
done:
    free(lo);
    free(given);
    return st;
}

static void format_default(const ew_opt_t *o, char *buf, size_t n)
{
    buf[0] = '\0';
    switch (o->type) {
    case EW_OPT_FLAG: snprintf(buf, n, "%s", *(int *)o->dest ? "on" : "off"); break;
    case EW_OPT_INT: snprintf(buf, n, "%ld", *(long *)o->dest); break;
    case EW_OPT_U64: snprintf(buf, n, "%llu", (unsigned long long)*(uint64_t *)o->dest); break;
    case EW_OPT_DOUBLE: snprintf(buf, n, "%g", *(double *)o->dest); break;
    case EW_OPT_STRING:
    case EW_OPT_CHOICE: {
        const char *s = *(const char **)o->dest;
        if (s) snprintf(buf, n, "%s", s);
        break;
    }
    }
}

void ew_cli_print_help(const ew_cmd_info_t *info, const ew_opt_t *opts)
{
    if (info) {
        printf("usage: %s\n\n", info->usage);
        if (info->summary) printf("%s\n\n", info->summary);
    }
    printf("options:\n");
    const char *last_section = "";
    for (int i = 0; opts && opts[i].name; i++) {
        const ew_opt_t *o = &opts[i];
        const char *sec = o->section ? o->section : "";
        if (strcmp(sec, last_section)) {
            printf(" [%s]\n", sec);
            last_section = sec;
        }
        char left[64], def[64];
        const char *arg = o->type == EW_OPT_FLAG     ? ""
                          : o->type == EW_OPT_INT || o->type == EW_OPT_U64 ? " N"
                          : o->type == EW_OPT_DOUBLE ? " X"
                          : o->type == EW_OPT_CHOICE ? " WORD"
                                                     : " VALUE";
        if (o->short_name)
            snprintf(left, sizeof left, "-%c, --%s%s", o->short_name, o->name, arg);
        else
            snprintf(left, sizeof left, "    --%s%s", o->name, arg);
        format_default(o, def, sizeof def);
        printf("  %-30s %s", left, o->help ? o->help : "");
        if (o->type == EW_OPT_CHOICE) printf(" (%s)", o->choices);
        if (o->required)
            printf(" [required]");
        else if (def[0] && o->type != EW_OPT_FLAG)
            printf(" [%s]", def);
        printf("\n");
    }
    printf(" [general]\n");
    printf("  %-30s %s\n", "-c, --config FILE", "read options from an INI file ([section] key = value); the command line overrides it");
    printf("  %-30s %s\n", "    --json", "print the figures as one JSON object on the last line of stdout");
    printf("  %-30s %s\n", "-q, --quiet", "only warnings and errors");
    printf("  %-30s %s\n", "-v, --verbose", "debug messages");
    printf("  %-30s %s\n", "-h, --help", "this help");
    if (info && info->json_keys) printf("\n--json keys: %s\n", info->json_keys);
}

void ew_cli_params_to_json(const ew_opt_t *opts, cJSON *obj)
{
    for (int i = 0; opts && opts[i].name; i++) {
        const ew_opt_t *o = &opts[i];
        switch (o->type) {
        case EW_OPT_FLAG: cJSON_AddBoolToObject(obj, o->name, *(int *)o->dest); break;
        case EW_OPT_INT: cJSON_AddNumberToObject(obj, o->name, (double)*(long *)o->dest); break;
        case EW_OPT_U64: cJSON_AddNumberToObject(obj, o->name, (double)*(uint64_t *)o->dest); break;
        case EW_OPT_DOUBLE: cJSON_AddNumberToObject(obj, o->name, *(double *)o->dest); break;
        case EW_OPT_STRING:
        case EW_OPT_CHOICE: {
            const char *s = *(const char **)o->dest;
            if (s)
                cJSON_AddStringToObject(obj, o->name, s);
            else
                cJSON_AddNullToObject(obj, o->name);
            break;
        }
        }
    }
}

void ew_cli_json_print(const cJSON *obj)
{
    char *s = cJSON_PrintUnformatted(obj);
    if (s) {
        printf("%s\n", s);
        cJSON_free(s);
    }
    fflush(stdout);
}
