/* ewald CLI: the command table. Each command lives in src/cli/cmd_*.c and
 * is listed once in commands.c; `ewald --help` lists exactly this table. */
#ifndef EW_CLI_COMMANDS_H
#define EW_CLI_COMMANDS_H

#include "cli/cli.h"

typedef struct {
    const char *area;    /* "xfel", "em", or NULL for a top-level command */
    const char *name;    /* "simulate" (for nested areas: "noise train") */
    ew_cmd_fn fn;
    const char *summary; /* one line for the listing */
} ew_command_t;

extern const ew_command_t ew_commands[];

/* Area descriptions for `ewald AREA --help`. */
typedef struct {
    const char *area;
    const char *summary;
} ew_area_t;

extern const ew_area_t ew_areas[];

#endif
