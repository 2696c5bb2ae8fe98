/* ewald: the command-line program. Dispatches `ewald [AREA] COMMAND ...`
 * to the command table (commands.c); every command is a thin layer over
 * libewald. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

static void print_usage(FILE *f)
{
    fprintf(f, "ewald %s — single-particle imaging: XFEL diffraction and cryo-EM, simulation and reconstruction\n\n",
            EW_VERSION);
    fprintf(f, "usage: ewald [--quiet|--verbose] [AREA] COMMAND [options]\n\ncommands:\n");
    for (const ew_command_t *c = ew_commands; c->name; c++) {
        char full[64];
        snprintf(full, sizeof full, "%s%s%s", c->area ? c->area : "", c->area ? " " : "", c->name);
        fprintf(f, "  %-22s %s\n", full, c->summary);
    }
    fprintf(f, "\n`ewald COMMAND --help` describes a command and every option; --version prints the version.\n");
}

static int area_exists(const char *a)
{
    for (const ew_command_t *c = ew_commands; c->name; c++)
        if (c->area && !strcmp(c->area, a)) return 1;
    return 0;
}

static void print_area(const char *area)
{
    const char *summary = "";
    for (const ew_area_t *a = ew_areas; a->area; a++)
        if (!strcmp(a->area, area)) summary = a->summary;
    printf("ewald %s — %s\n\nusage: ewald %s COMMAND [options]\n\ncommands:\n", area, summary, area);
    for (const ew_command_t *c = ew_commands; c->name; c++)
        if (c->area && !strcmp(c->area, area)) printf("  %-18s %s\n", c->name, c->summary);
}

/* Does argv[0..] start with the words of name ("noise train")? Returns the
 * number of words matched, or 0. */
static int match_words(const char *name, int argc, char **argv)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s", name);
    int n = 0;
    for (char *w = strtok(buf, " "); w; w = strtok(NULL, " ")) {
        if (n >= argc || strcmp(argv[n], w)) return 0;
        n++;
    }
    return n;
}

int main(int argc, char **argv)
{
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--version")) {
            printf("ewald %s\n", EW_VERSION);
            return 0;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            print_usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")) {
            ew_log_set_level(EW_LOG_WARN);
        } else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
            ew_log_set_level(EW_LOG_DEBUG);
        } else {
            fprintf(stderr, "ewald: unknown option '%s' (see ewald --help)\n", argv[i]);
            return 2;
        }
    }
    if (i >= argc) {
        print_usage(stderr);
        return 2;
    }
    const char *area = NULL;
    if (area_exists(argv[i])) {
        area = argv[i++];
        if (i >= argc || !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            print_area(area);
            return i >= argc ? 2 : 0;
        }
    }
    const ew_command_t *best = NULL;
    int best_words = 0;
    for (const ew_command_t *c = ew_commands; c->name; c++) {
        if ((c->area == NULL) != (area == NULL) || (area && strcmp(c->area, area))) continue;
        int w = match_words(c->name, argc - i, argv + i);
        if (w > best_words) {
            best = c;
            best_words = w;
        }
    }
    if (!best) {
        if (area)
            fprintf(stderr, "ewald: unknown command '%s %s' (see ewald %s --help)\n", area, argv[i], area);
        else
            fprintf(stderr, "ewald: unknown command '%s' (see ewald --help)\n", argv[i]);
        return 2;
    }
    /* The command sees argv[0] = its last word. */
    int first = i + best_words - 1;
    return best->fn(argc - first, argv + first);
}
