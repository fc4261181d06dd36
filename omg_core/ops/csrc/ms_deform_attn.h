// Multi-scale deformable attention kernels: declarations shared by the CPU, CUDA and binding translation units.
//
// Tensor layouts (all contiguous; the Python dispatcher validates shapes and dtypes before calling in):
//   value               B x S x heads x C        (S = sum over levels of H_l * W_l)
//   spatial_shapes      L x 2 int64              (H_l, W_l)
//   level_start_index   L int64                  (offset of level l in S)
//   sampling_locations  B x Q x heads x L x P x 2 normalised (x, y)
//   attention_weights   B x Q x heads x L x P
//   output              B x Q x (heads * C)
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>
#include "../../../omg_common/csrc/omg_check.h"  // OMG_CHECK: error messages that cannot crash

namespace omg_msda {

// Sizes of one call, read once from the validated tensors.
struct Geometry {
  int64_t batch;
  int64_t spatial;   // S, total number of value positions over all levels
  int64_t heads;
  int64_t channels;  // C per head
  int64_t queries;
  int64_t levels;
  int64_t points;
};

inline Geometry read_geometry(const at::Tensor& value, const at::Tensor& sampling_locations) {
  return Geometry{value.size(0), value.size(1), value.size(2), value.size(3), sampling_locations.size(1),
                  sampling_locations.size(3), sampling_locations.size(4)};
}

// Shape consistency every kernel relies on for memory safety. The Python dispatcher already validates with friendlier
// messages; this guards direct calls into the extension.
inline void check_layout(const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
                         const at::Tensor& sampling_locations, const at::Tensor& attention_weights) {
  OMG_CHECK(value.dim() == 4 && sampling_locations.dim() == 6 && attention_weights.dim() == 5,
            "omg_msda: expected value (B, S, heads, C), sampling_locations (B, Q, heads, L, P, 2) and "
            "attention_weights (B, Q, heads, L, P)");
  const int64_t levels = spatial_shapes.size(0);
  OMG_CHECK(spatial_shapes.dim() == 2 && spatial_shapes.size(1) == 2 && level_start_index.dim() == 1 &&
                level_start_index.size(0) == levels,
            "omg_msda: expected spatial_shapes (L, 2) and level_start_index (L,)");
  OMG_CHECK(sampling_locations.size(0) == value.size(0) && sampling_locations.size(2) == value.size(2) &&
                sampling_locations.size(3) == levels && sampling_locations.size(5) == 2,
            "omg_msda: sampling_locations does not match value's batch/heads or spatial_shapes' levels");
  for (int64_t d = 0; d < 5; ++d) {
    OMG_CHECK(attention_weights.size(d) == sampling_locations.size(d),
              "omg_msda: attention_weights must be sampling_locations' shape without the last dimension");
  }
}

at::Tensor forward_cpu(const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
                       const at::Tensor& sampling_locations, const at::Tensor& attention_weights);

// Returns {grad_value, grad_sampling_locations, grad_attention_weights}.
std::vector<at::Tensor> backward_cpu(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                     const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                                     const at::Tensor& attention_weights, const at::Tensor& grad_output);

// Restrict the CPU kernels to their baseline (SSE2) copy, or lift that restriction; returns whether the AVX2 copy is
// now in use. For tests and benchmarks: the AVX2 copy is otherwise chosen whenever the CPU supports it.
bool select_cpu_kernels(bool baseline_only);

#ifdef WITH_CUDA
at::Tensor forward_cuda(const at::Tensor& value, const at::Tensor& spatial_shapes,
                        const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                        const at::Tensor& attention_weights);

std::vector<at::Tensor> backward_cuda(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                      const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                                      const at::Tensor& attention_weights, const at::Tensor& grad_output);
#endif

}  // namespace omg_msda
