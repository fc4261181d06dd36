// CUDA kernels of multi-scale deformable attention, im2col style: one thread per output element (b, q, head, c).
//
// Forward: each thread gathers its channel from the four bilinear corners of every (level, point) and accumulates.
// Backward: each thread scatters its channel's share into grad_value with atomicAdd (many queries hit one pixel),
// and the per-point gradients (location, attention weight) are sums over the C channel threads of a head. Those
// sums are done with warp shuffles when a head's channels tile warps evenly (C divides 32, or 32 divides C), and one
// atomicAdd per group lands the result; otherwise every thread adds its own share atomically.
#include "ms_deform_attn.h"
#include "ms_deform_attn_bilinear.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros_like.h>
// c10's stream/guard headers rather than ATen/cuda/CUDAContext.h, which pulls in cuBLAS/cuSPARSE headers that a bare
// CUDA toolkit may not ship; this keeps the file compilable with nvcc and torch's include paths alone.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include "../../../omg_common/csrc/omg_check.h"  // OMG_CHECK: error messages that cannot crash

namespace omg_msda {
namespace {

constexpr int kThreadsPerBlock = 256;  // a multiple of the warp size: channel groups never straddle a block
constexpr int kWarpSize = 32;

void check_cuda_inputs(const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
                       const at::Tensor& sampling_locations, const at::Tensor& attention_weights) {
  for (const at::Tensor* tensor : {&value, &spatial_shapes, &level_start_index, &sampling_locations,
                                   &attention_weights}) {
    OMG_CHECK(tensor->is_cuda() && tensor->device() == value.device(),
              "omg_msda CUDA kernel needs every tensor on ", value.device(), ", got one on ", tensor->device());
    OMG_CHECK(tensor->is_contiguous(), "omg_msda CUDA kernel needs contiguous tensors (the dispatcher makes them so)");
  }
  check_layout(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
  OMG_CHECK(spatial_shapes.scalar_type() == at::kLong && level_start_index.scalar_type() == at::kLong,
            "omg_msda: spatial_shapes and level_start_index must be int64");
  OMG_CHECK(sampling_locations.scalar_type() == value.scalar_type() &&
                attention_weights.scalar_type() == value.scalar_type(),
            "omg_msda: value, sampling_locations and attention_weights must share one dtype");
}

int64_t blocks_for(int64_t threads) { return (threads + kThreadsPerBlock - 1) / kThreadsPerBlock; }

template <typename scalar_t>
__global__ void forward_kernel(Geometry g, const scalar_t* __restrict__ value, const int64_t* __restrict__ shapes,
                               const int64_t* __restrict__ starts, const scalar_t* __restrict__ locations,
                               const scalar_t* __restrict__ weights, scalar_t* __restrict__ output) {
  const int64_t element = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;  // (b, q, head, c)
  const int64_t total = g.batch * g.queries * g.heads * g.channels;
  if (element >= total) {
    return;
  }
  const int64_t c = element % g.channels;
  const int64_t head_item = element / g.channels;  // (b * Q + q) * heads + head
  const int64_t h = head_item % g.heads;
  const int64_t b = head_item / (g.heads * g.queries);
  const int64_t row_stride = g.heads * g.channels;
  const int64_t points_per_head = g.levels * g.points;
  const scalar_t* head_locations = locations + head_item * points_per_head * 2;
  const scalar_t* head_weights = weights + head_item * points_per_head;
  scalar_t sum = 0;
  for (int64_t l = 0; l < g.levels; ++l) {
    const int64_t height = shapes[2 * l];
    const int64_t width = shapes[2 * l + 1];
    const scalar_t* level_value = value + ((b * g.spatial + starts[l]) * g.heads + h) * g.channels + c;
    for (int64_t p = 0; p < g.points; ++p) {
      const int64_t point = l * g.points + p;
      const auto corners =
          bilinear_corners<scalar_t>(head_locations[2 * point], head_locations[2 * point + 1], height, width);
      if (!corners.inside) {
        continue;
      }
      scalar_t sample = 0;
      for (int k = 0; k < 4; ++k) {
        if (corners.index[k] >= 0) {
          sample += corners.weight[k] * level_value[corners.index[k] * row_stride];
        }
      }
      sum += head_weights[point] * sample;
    }
  }
  output[element] = sum;
}

// Sum over the `width` consecutive lanes of a channel group (width is a power of two <= 32, or 1 for no reduction).
// Every lane of the warp must call this, active or not, because the shuffles use the full mask.
template <typename scalar_t>
__device__ inline scalar_t group_sum(scalar_t partial, int width) {
  for (int offset = width / 2; offset > 0; offset /= 2) {
    partial += __shfl_xor_sync(0xffffffffu, partial, offset);
  }
  return partial;
}

template <typename scalar_t>
__global__ void backward_kernel(Geometry g, int reduce_width, const scalar_t* __restrict__ value,
                                const int64_t* __restrict__ shapes, const int64_t* __restrict__ starts,
                                const scalar_t* __restrict__ locations, const scalar_t* __restrict__ weights,
                                const scalar_t* __restrict__ grad_output, scalar_t* __restrict__ grad_value,
                                scalar_t* __restrict__ grad_locations, scalar_t* __restrict__ grad_weights) {
  const int64_t element = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;  // (b, q, head, c)
  const int64_t total = g.batch * g.queries * g.heads * g.channels;
  // Threads past the end stay alive with zero contributions: the group shuffles need every lane of the warp.
  const bool active = element < total;
  const int64_t safe_element = active ? element : 0;
  const int64_t c = safe_element % g.channels;
  const int64_t head_item = safe_element / g.channels;
  const int64_t h = head_item % g.heads;
  const int64_t b = head_item / (g.heads * g.queries);
  const bool leader = (threadIdx.x % reduce_width) == 0;
  const int64_t row_stride = g.heads * g.channels;
  const int64_t points_per_head = g.levels * g.points;
  const scalar_t* head_locations = locations + head_item * points_per_head * 2;
  const scalar_t* head_weights = weights + head_item * points_per_head;
  const scalar_t grad_out = active ? grad_output[safe_element] : scalar_t(0);
  for (int64_t l = 0; l < g.levels; ++l) {
    const int64_t height = shapes[2 * l];
    const int64_t width = shapes[2 * l + 1];
    const int64_t level_offset = ((b * g.spatial + starts[l]) * g.heads + h) * g.channels + c;
    for (int64_t p = 0; p < g.points; ++p) {
      const int64_t point = l * g.points + p;
      const auto corners =
          bilinear_corners<scalar_t>(head_locations[2 * point], head_locations[2 * point + 1], height, width);
      const bool contributes = active && corners.inside;
      const scalar_t attention = head_weights[point];
      scalar_t corner_dot[4] = {0, 0, 0, 0};  // this channel's grad_out * value at each corner
      if (contributes) {
        for (int k = 0; k < 4; ++k) {
          if (corners.index[k] >= 0) {
            const int64_t offset = level_offset + corners.index[k] * row_stride;
            corner_dot[k] = grad_out * value[offset];
            atomicAdd(grad_value + offset, attention * corners.weight[k] * grad_out);
          }
        }
      }
      for (int k = 0; k < 4; ++k) {
        corner_dot[k] = group_sum(corner_dot[k], reduce_width);
      }
      if (contributes && leader) {
        scalar_t sampled_dot = 0;
        for (int k = 0; k < 4; ++k) {
          sampled_dot += corners.weight[k] * corner_dot[k];
        }
        scalar_t grad_x;
        scalar_t grad_y;
        bilinear_location_grad(corners, corner_dot, height, width, &grad_x, &grad_y);
        const int64_t point_item = head_item * points_per_head + point;
        atomicAdd(grad_weights + point_item, sampled_dot);
        atomicAdd(grad_locations + 2 * point_item, attention * grad_x);
        atomicAdd(grad_locations + 2 * point_item + 1, attention * grad_y);
      }
    }
  }
}

// Lanes per shuffle reduction: the whole channel group when it tiles a warp, a full warp when groups span several
// warps, else 1 (each thread adds its own share atomically).
int reduce_width_for(int64_t channels) {
  if (channels <= kWarpSize && kWarpSize % channels == 0) {
    return static_cast<int>(channels);
  }
  if (channels % kWarpSize == 0) {
    return kWarpSize;
  }
  return 1;
}

}  // namespace

at::Tensor forward_cuda(const at::Tensor& value, const at::Tensor& spatial_shapes,
                        const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                        const at::Tensor& attention_weights) {
  check_cuda_inputs(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
  const c10::cuda::CUDAGuard device_guard(value.device());
  const Geometry g = read_geometry(value, sampling_locations);
  // B x Q x heads*C; every element is written exactly once by its own thread, so no zero fill is needed
  auto output = at::empty({g.batch, g.queries, g.heads * g.channels}, value.options());
  const int64_t total = output.numel();
  if (total == 0) {
    return output;
  }
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "omg_msda_forward_cuda", [&] {
    forward_kernel<scalar_t><<<blocks_for(total), kThreadsPerBlock, 0, stream>>>(
        g, value.const_data_ptr<scalar_t>(), spatial_shapes.const_data_ptr<int64_t>(),
        level_start_index.const_data_ptr<int64_t>(), sampling_locations.const_data_ptr<scalar_t>(),
        attention_weights.const_data_ptr<scalar_t>(), output.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return output;
}

std::vector<at::Tensor> backward_cuda(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                      const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                                      const at::Tensor& attention_weights, const at::Tensor& grad_output) {
  check_cuda_inputs(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
  OMG_CHECK(grad_output.device() == value.device() && grad_output.is_contiguous() &&
                grad_output.scalar_type() == value.scalar_type(),
            "omg_msda: grad_output must be a contiguous tensor of value's device and dtype");
  const c10::cuda::CUDAGuard device_guard(value.device());
  const Geometry g = read_geometry(value, sampling_locations);
  // All three are accumulated with atomicAdd, so they start at zero.
  auto grad_value = at::zeros_like(value);
  auto grad_locations = at::zeros_like(sampling_locations);
  auto grad_weights = at::zeros_like(attention_weights);
  const int64_t total = grad_output.numel();
  if (total == 0) {
    return {grad_value, grad_locations, grad_weights};
  }
  const int reduce_width = reduce_width_for(g.channels);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "omg_msda_backward_cuda", [&] {
    backward_kernel<scalar_t><<<blocks_for(total), kThreadsPerBlock, 0, stream>>>(
        g, reduce_width, value.const_data_ptr<scalar_t>(), spatial_shapes.const_data_ptr<int64_t>(),
        level_start_index.const_data_ptr<int64_t>(), sampling_locations.const_data_ptr<scalar_t>(),
        attention_weights.const_data_ptr<scalar_t>(), grad_output.const_data_ptr<scalar_t>(),
        grad_value.mutable_data_ptr<scalar_t>(), grad_locations.mutable_data_ptr<scalar_t>(),
        grad_weights.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {grad_value, grad_locations, grad_weights};
}

}  // namespace omg_msda
