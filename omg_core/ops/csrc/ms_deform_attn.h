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

namespace omg_msda {

at::Tensor forward_cpu(const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
                       const at::Tensor& sampling_locations, const at::Tensor& attention_weights);

// Returns {grad_value, grad_sampling_locations, grad_attention_weights}.
std::vector<at::Tensor> backward_cpu(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                     const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                                     const at::Tensor& attention_weights, const at::Tensor& grad_output);

#ifdef WITH_CUDA
at::Tensor forward_cuda(const at::Tensor& value, const at::Tensor& spatial_shapes,
                        const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                        const at::Tensor& attention_weights);

std::vector<at::Tensor> backward_cuda(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                      const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                                      const at::Tensor& attention_weights, const at::Tensor& grad_output);
#endif

}  // namespace omg_msda
