// Bilinear sampling geometry shared by the CPU and CUDA kernels of multi-scale deformable attention.
//
// The convention is grid_sample's (align_corners=False, padding_mode="zeros"): a normalised location x in [0, 1]
// maps to the pixel coordinate x * W - 0.5, and every corner that falls outside the map contributes zero. Keeping
// the geometry in one header is what makes the two backends agree with each other and with the reference.
#pragma once

#include <c10/macros/Macros.h>

#include <cmath>
#include <cstdint>

namespace omg_msda {

// floor() for both precisions on host and device, without relying on the float overloads of <cmath>.
C10_HOST_DEVICE inline float floor_of(float v) { return ::floorf(v); }
C10_HOST_DEVICE inline double floor_of(double v) { return ::floor(v); }

// The four corners around one sampling point: their row indices in the level's flattened (H*W) map and their
// bilinear weights. A corner outside the map has index -1 and must be skipped (its value counts as zero).
template <typename scalar_t>
struct BilinearCorners {
  int64_t index[4];      // top-left, top-right, bottom-left, bottom-right; -1 when outside the map
  scalar_t weight[4];    // bilinear weight of each corner (products of the fractional distances below)
  scalar_t frac_y;       // distance of the point below the top row, in [0, 1)
  scalar_t frac_x;       // distance of the point right of the left column, in [0, 1)
  bool inside;           // false when the point is so far out that all four corners are outside
};

// Locate the corners of the normalised point (x, y) in a height x width map.
template <typename scalar_t>
C10_HOST_DEVICE inline BilinearCorners<scalar_t> bilinear_corners(scalar_t x, scalar_t y, int64_t height,
                                                                   int64_t width) {
  BilinearCorners<scalar_t> corners;
  const scalar_t pixel_y = y * static_cast<scalar_t>(height) - static_cast<scalar_t>(0.5);
  const scalar_t pixel_x = x * static_cast<scalar_t>(width) - static_cast<scalar_t>(0.5);
  // Strict bounds: a point at exactly -1 or at H/W touches only outside corners (weight 1 on a zero pixel).
  corners.inside = pixel_y > -1 && pixel_x > -1 && pixel_y < static_cast<scalar_t>(height) &&
                   pixel_x < static_cast<scalar_t>(width);
  if (!corners.inside) {
    return corners;
  }
  const scalar_t top_f = floor_of(pixel_y);
  const scalar_t left_f = floor_of(pixel_x);
  const int64_t top = static_cast<int64_t>(top_f);
  const int64_t left = static_cast<int64_t>(left_f);
  corners.frac_y = pixel_y - top_f;
  corners.frac_x = pixel_x - left_f;
  const scalar_t rest_y = 1 - corners.frac_y;
  const scalar_t rest_x = 1 - corners.frac_x;
  const bool top_in = top >= 0;
  const bool bottom_in = top + 1 < height;
  const bool left_in = left >= 0;
  const bool right_in = left + 1 < width;
  corners.index[0] = (top_in && left_in) ? top * width + left : -1;
  corners.index[1] = (top_in && right_in) ? top * width + left + 1 : -1;
  corners.index[2] = (bottom_in && left_in) ? (top + 1) * width + left : -1;
  corners.index[3] = (bottom_in && right_in) ? (top + 1) * width + left + 1 : -1;
  corners.weight[0] = rest_y * rest_x;
  corners.weight[1] = rest_y * corners.frac_x;
  corners.weight[2] = corners.frac_y * rest_x;
  corners.weight[3] = corners.frac_y * corners.frac_x;
  return corners;
}

// Derivatives of the sampled value with respect to the normalised (x, y), given the dot product of the upstream
// gradient with each corner's value (zero for outside corners). Chain rule through pixel = x * W - 0.5.
template <typename scalar_t>
C10_HOST_DEVICE inline void bilinear_location_grad(const BilinearCorners<scalar_t>& corners,
                                                   const scalar_t corner_dot[4], int64_t height, int64_t width,
                                                   scalar_t* grad_x, scalar_t* grad_y) {
  const scalar_t rest_y = 1 - corners.frac_y;
  const scalar_t rest_x = 1 - corners.frac_x;
  const scalar_t d_pixel_y = rest_x * (corner_dot[2] - corner_dot[0]) + corners.frac_x * (corner_dot[3] - corner_dot[1]);
  const scalar_t d_pixel_x = rest_y * (corner_dot[1] - corner_dot[0]) + corners.frac_y * (corner_dot[3] - corner_dot[2]);
  *grad_x = d_pixel_x * static_cast<scalar_t>(width);
  *grad_y = d_pixel_y * static_cast<scalar_t>(height);
}

}  // namespace omg_msda
