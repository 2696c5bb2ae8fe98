/* ewald nn: resampling: nearest/bilinear upsampling and grid sampling.
 *
 * ew_upsample_forward: out (n, c, h s, w s) from x (n, c, h, w), integer
 *   factor s. Nearest: out[y][x] = in[y / s][x / s]. Bilinear: PyTorch's
 *   align_corners=False: source = (dst + 0.5) / s - 0.5, clamped at 0,
 *   neighbours clamped at the edge.
 * ew_grid_sample_forward: PyTorch F.grid_sample(mode='bilinear',
 *   padding_mode='zeros'): out (n, c, gh, gw) samples x (n, c, h, w) at
 *   grid (n, gh, gw, 2) = (x, y) in [-1, 1]; align_corners 0 maps -1/+1
 *   to the outer pixel edges (ix = ((gx + 1) w - 1) / 2), 1 to the
 *   centres of the corner pixels (ix = (gx + 1)(w - 1) / 2). Samples
 *   outside read zeros.
 * Backward functions ADD: dx (may be NULL) and, for the grid sampler,
 *   dgrid (may be NULL), the gradient with respect to the coordinates.
 */
#ifndef EW_NN_SAMPLE_H
#define EW_NN_SAMPLE_H

typedef enum { EW_UPSAMPLE_NEAREST = 0, EW_UPSAMPLE_BILINEAR = 1 } ew_upsample_t;

#define EW_NN_SAMPLE_DECL(T, SFX)                                                                  \
    void ew_upsample_forward##SFX(ew_upsample_t mode, T *out, const T *x, int n, int c, int h,    \
                                  int w, int s);                                                  \
    void ew_upsample_backward##SFX(ew_upsample_t mode, T *dx, const T *dout, int n, int c, int h, \
                                   int w, int s);                                                 \
    void ew_grid_sample_forward##SFX(T *out, const T *x, const T *grid, int n, int c, int h,      \
                                     int w, int gh, int gw, int align_corners);                   \
    void ew_grid_sample_backward##SFX(T *dx, T *dgrid, const T *dout, const T *x, const T *grid,  \
                                      int n, int c, int h, int w, int gh, int gw,                 \
                                      int align_corners);

EW_NN_SAMPLE_DECL(float, )
EW_NN_SAMPLE_DECL(double, _d)

#endif
