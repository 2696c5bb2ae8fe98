/* ewald CLI: the command table. */
#include "cli/commands.h"

#include <stddef.h>

int cmd_selftest(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_eval_orient(int argc, char **argv);
int cmd_xfel_simulate(int argc, char **argv);
int cmd_phase(int argc, char **argv);
int cmd_xfel_emc(int argc, char **argv);
int cmd_em_simulate(int argc, char **argv);
int cmd_xfel_train(int argc, char **argv);
int cmd_xfel_infer(int argc, char **argv);
int cmd_em_reconstruct(int argc, char **argv);
int cmd_em_noise_train(int argc, char **argv);
int cmd_em_noise_apply(int argc, char **argv);
int cmd_em_pick_train(int argc, char **argv);
int cmd_em_pick_run(int argc, char **argv);
int cmd_em_pick_eval(int argc, char **argv);

const ew_area_t ew_areas[] = {
    {"xfel", "X-ray free-electron laser single-particle imaging"},
    {"em", "cryo-electron microscopy"},
    {"eval", "evaluation against ground truth"},
    {NULL, NULL},
};

const ew_command_t ew_commands[] = {
    {NULL, "info", cmd_info, "describe any supported file (structure, MRC, STAR, CXI, HDF5, EMC, npy, PNG...)"},
    {NULL, "convert", cmd_convert, "convert CXI <-> Dragonfly .emc, MRC <-> HDF5 volumes, STAR <-> Topaz/.box"},
    {NULL, "compare", cmd_compare, "align two volumes (rotation, hand) and measure their FSC resolution"},
    {NULL, "phase", cmd_phase, "phase retrieval: 3D intensity -> electron density (ER/HIO/DM/RAAR, shrinkwrap)"},
    {NULL, "selftest", cmd_selftest, "check the build: RNG known answers, threads, libraries"},
    {NULL, "demo", cmd_demo, "the end-to-end demo on 2cex: XFEL + cryo-EM, ending in an HTML report"},
    {"xfel", "simulate", cmd_xfel_simulate, "simulate diffraction patterns of a structure (CXI, .emc, true volume)"},
    {"xfel", "emc", cmd_xfel_emc, "reconstruct the 3D intensity from patterns by EMC (CXI or Dragonfly .emc)"},
    {"xfel", "train", cmd_xfel_train, "train the self-supervised orientation model on patterns (checkpoint, orientations, intensity)"},
    {"xfel", "infer", cmd_xfel_infer, "orientations and scales of patterns from a trained self-supervised model"},
    {"em", "simulate", cmd_em_simulate, "simulate cryo-EM micrographs, particle stacks and STAR files"},
    {"em", "noise train", cmd_em_noise_train, "learn simulated -> real micrograph noise translation (CUT, mask-guided PatchNCE)"},
    {"em", "noise apply", cmd_em_noise_apply, "translate simulated micrographs/stacks with a trained noise model"},
    {"em", "pick train", cmd_em_pick_train, "train the particle picker on annotated micrographs (simulator folders or STAR)"},
    {"em", "pick run", cmd_em_pick_run, "pick particles: STAR + Topaz TSV with scores (AUPRC with --truth)"},
    {"em", "pick eval", cmd_em_pick_eval, "AUPRC of scored picks (Topaz TSV) against true coordinates (STAR)"},
    {"em", "reconstruct", cmd_em_reconstruct, "3D map from particles + poses (Fourier inversion, half maps, FSC, optional projection matching)"},
    {"eval", "orientations", cmd_eval_orient, "orientation error of predicted against true quaternions"},
    {NULL, NULL, NULL, NULL},
};
