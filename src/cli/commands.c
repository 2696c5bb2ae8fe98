/* ewald CLI: the command table. */
#include "cli/commands.h"

#include <stddef.h>

int cmd_selftest(int argc, char **argv);
int cmd_demo(int argc, char **argv);

const ew_area_t ew_areas[] = {
    {"xfel", "X-ray free-electron laser single-particle imaging"},
    {"em", "cryo-electron microscopy"},
    {NULL, NULL},
};

const ew_command_t ew_commands[] = {
    {NULL, "selftest", cmd_selftest, "check the build: RNG known answers, threads, libraries"},
    {NULL, "demo", cmd_demo, "the end-to-end demo on 2cex: XFEL + cryo-EM, ending in an HTML report"},
    {NULL, NULL, NULL, NULL},
};
