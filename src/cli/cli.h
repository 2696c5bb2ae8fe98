/* ewald CLI: the option/config framework every command uses.
 *
 * A command declares its options once, as a table of ew_opt_t. From that
 * table the framework builds getopt_long's options, reads a config file
 * given with -c/--config (INI: `[section]`, `key = value`, `#` comments;
 * a key belongs to the option whose section and name match), lets the
 * command line override the file, and prints --help. Unknown keys,
 * malformed values and missing required options are errors that name the
 * file and line (or the option). The CLI holds no science: a command parses
 * options, calls the library, prints the result.
 *
 * Every command that measures accepts --json and then prints one JSON
 * object as the last line of standard output (ew_cli_json_*).
 */
#ifndef EW_CLI_CLI_H
#define EW_CLI_CLI_H

#include <stdint.h>

#include <cJSON.h>

#include "core/core.h"

typedef enum {
    EW_OPT_FLAG,    /* int: set to 1 when given (config: true/false/1/0/yes/no) */
    EW_OPT_INT,     /* long */
    EW_OPT_U64,     /* uint64_t (seeds, counts) */
    EW_OPT_DOUBLE,  /* double */
    EW_OPT_STRING,  /* const char * (points into argv or into the config's storage) */
    EW_OPT_CHOICE   /* const char *, one of the '|'-separated words in `choices` */
} ew_opt_type_t;

typedef struct {
    const char *name;      /* long option name, also the config key */
    char short_name;       /* 0 if none */
    ew_opt_type_t type;
    void *dest;            /* long*, uint64_t*, double*, const char**, int* */
    const char *section;   /* config section ("beam", "detector"...), NULL: top level */
    const char *help;      /* one line; the default is printed from *dest */
    const char *choices;   /* EW_OPT_CHOICE: "a|b|c" */
    int required;          /* must be given (file or command line) */
    double min, max;       /* numeric range checked when min < max */
} ew_opt_t;

typedef struct {
    const char *usage;        /* e.g. "ewald xfel simulate [options] STRUCTURE" */
    const char *summary;      /* one paragraph */
    const char *json_keys;    /* documentation of the --json keys (may be NULL) */
    int min_positional, max_positional;
} ew_cmd_info_t;

/* Parse argv (argv[0] is the command name) against opts. Handles -h/--help
 * (prints help, *exit_now = 1, returns EW_OK), -c/--config FILE, --json
 * (sets *json if json != NULL), -q/--quiet and -v/--verbose. Positional
 * arguments are returned in *pos / *npos (pointers into argv). On error the
 * message names the option or the config file and line. */
ew_status_t ew_cli_parse(int argc, char **argv, const ew_cmd_info_t *info, ew_opt_t *opts, int *json,
                         char ***pos, int *npos, int *exit_now);

/* Print the help text of a command to stdout. */
void ew_cli_print_help(const ew_cmd_info_t *info, const ew_opt_t *opts);

/* Record the parameters actually used (after file + command line) into a
 * JSON object: {"name": value, ...}. */
void ew_cli_params_to_json(const ew_opt_t *opts, cJSON *obj);

/* Print a cJSON object compactly on one line to stdout (the --json line). */
void ew_cli_json_print(const cJSON *obj);

/* A command's entry point: returns the process exit status. */
typedef int (*ew_cmd_fn)(int argc, char **argv);

/* Report a failed library call as "ewald: <message>" on stderr, return 1. */
int ew_cli_fail(void);

#endif
