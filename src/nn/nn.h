/* ewald nn: the neural-network engine (umbrella header).
 *
 * threads.h     who owns the cores (OpenMP regions vs OpenBLAS threads)
 * params.h      all parameters, gradients and optimizer state in one block
 * conv.h        conv2d, transposed conv2d, linear
 * norm.h        batch, group/instance, layer norm; L2 normalisation
 * act.h         activations, residual add, concatenation
 * pool.h        max/average/global-average pooling
 * sample.h      nearest/bilinear upsampling, grid sampling
 * loss.h        MSE, masked MSE, Poisson NLL, BCE, LSGAN, softmax CE, InfoNCE
 * optim.h       SGD, Adam, AdamW, gradient clipping, warm-up + cosine
 * blocks.h      layers with parameters, ResNet encoder, MLP/SIREN
 * seq.h         sequential stacks (nn.Sequential)
 * checkpoint.h  safetensors checkpoints with PyTorch names
 * dist.h        MPI data parallelism
 * docs/nn.md describes the design and the measurements behind it.
 */
#ifndef EW_NN_NN_H
#define EW_NN_NN_H

#include "nn/act.h"
#include "nn/blocks.h"
#include "nn/checkpoint.h"
#include "nn/conv.h"
#include "nn/dist.h"
#include "nn/loss.h"
#include "nn/norm.h"
#include "nn/optim.h"
#include "nn/params.h"
#include "nn/pool.h"
#include "nn/sample.h"
#include "nn/seq.h"
#include "nn/threads.h"

#endif
