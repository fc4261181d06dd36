// CPU kernels of multi-scale deformable attention (forward and backward), parallelised with at::parallel_for.
//
// Both kernels walk the sampling points of one (batch, query, head) at a time and do all per-point work over the C
// channels of a head in a single contiguous loop, which the compiler vectorises (value rows are C contiguous floats).
// The backward scatters into grad_value; instead of atomics, each task owns a (batch, head) slice of grad_value, and
// when there are fewer slices than threads the queries are split further, each split writing its own copy that is
// summed at the end.
#include "ms_deform_attn.h"
#include "ms_deform_attn_bilinear.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>

#include <algorithm>

namespace omg_msda {
namespace {

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

Geometry read_geometry(const at::Tensor& value, const at::Tensor& sampling_locations) {
  return Geometry{value.size(0), value.size(1), value.size(2), value.size(3), sampling_locations.size(1),
                  sampling_locations.size(3), sampling_locations.size(4)};
}

void check_cpu_inputs(const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
                      const at::Tensor& sampling_locations, const at::Tensor& attention_weights) {
  for (const at::Tensor* tensor : {&value, &spatial_shapes, &level_start_index, &sampling_locations,
                                   &attention_weights}) {
    TORCH_CHECK(tensor->device().is_cpu(), "omg_msda CPU kernel got a tensor on ", tensor->device());
    TORCH_CHECK(tensor->is_contiguous(), "omg_msda CPU kernel needs contiguous tensors (the dispatcher makes them so)");
  }
  TORCH_CHECK(spatial_shapes.scalar_type() == at::kLong && level_start_index.scalar_type() == at::kLong,
              "omg_msda: spatial_shapes and level_start_index must be int64");
  TORCH_CHECK(sampling_locations.scalar_type() == value.scalar_type() &&
                  attention_weights.scalar_type() == value.scalar_type(),
              "omg_msda: value, sampling_locations and attention_weights must share one dtype");
}

// out[c] += scale * row[c] over one head's channels.
template <typename scalar_t>
inline void scaled_add(scalar_t* __restrict__ out, const scalar_t* __restrict__ row, scalar_t scale, int64_t channels) {
#pragma omp simd
  for (int64_t c = 0; c < channels; ++c) {
    out[c] += scale * row[c];
  }
}

// Returns sum_c grad_out[c] * row[c] and, in the same pass, adds scale * grad_out into grad_row.
template <typename scalar_t>
inline scalar_t dot_and_scatter(const scalar_t* __restrict__ grad_out, const scalar_t* __restrict__ row,
                                scalar_t* __restrict__ grad_row, scalar_t scale, int64_t channels) {
  scalar_t dot = 0;
#pragma omp simd reduction(+ : dot)
  for (int64_t c = 0; c < channels; ++c) {
    dot += grad_out[c] * row[c];
    grad_row[c] += scale * grad_out[c];
  }
  return dot;
}

template <typename scalar_t>
void forward_kernel(const Geometry& g, const scalar_t* value, const int64_t* shapes, const int64_t* starts,
                    const scalar_t* locations, const scalar_t* weights, scalar_t* output) {
  const int64_t row_stride = g.heads * g.channels;  // distance between two spatial positions in value
  const int64_t points_per_head = g.levels * g.points;
  // One task = one (batch, query); it writes heads * C outputs nobody else touches.
  at::parallel_for(0, g.batch * g.queries, 16, [&](int64_t begin, int64_t end) {
    for (int64_t batch_query = begin; batch_query < end; ++batch_query) {
      const int64_t b = batch_query / g.queries;
      for (int64_t h = 0; h < g.heads; ++h) {
        const int64_t head_item = batch_query * g.heads + h;
        scalar_t* out = output + head_item * g.channels;
        const scalar_t* head_locations = locations + head_item * points_per_head * 2;
        const scalar_t* head_weights = weights + head_item * points_per_head;
        for (int64_t l = 0; l < g.levels; ++l) {
          const int64_t height = shapes[2 * l];
          const int64_t width = shapes[2 * l + 1];
          const scalar_t* level_value = value + ((b * g.spatial + starts[l]) * g.heads + h) * g.channels;
          for (int64_t p = 0; p < g.points; ++p) {
            const int64_t point = l * g.points + p;
            const auto corners =
                bilinear_corners<scalar_t>(head_locations[2 * point], head_locations[2 * point + 1], height, width);
            if (!corners.inside) {
              continue;
            }
            const scalar_t attention = head_weights[point];
            for (int k = 0; k < 4; ++k) {
              if (corners.index[k] >= 0) {
                scaled_add(out, level_value + corners.index[k] * row_stride, attention * corners.weight[k],
                           g.channels);
              }
            }
          }
        }
      }
    }
  });
}

// How many query ranges to cut each (batch, head) slice into so that every thread has work.
int64_t query_splits(const Geometry& g) {
  const int64_t slices = g.batch * g.heads;
  const int64_t threads = at::get_num_threads();
  if (slices >= threads || g.queries < 2) {
    return 1;
  }
  return std::min<int64_t>((threads + slices - 1) / slices, g.queries);
}

template <typename scalar_t>
void backward_kernel(const Geometry& g, int64_t splits, const scalar_t* value, const int64_t* shapes,
                     const int64_t* starts, const scalar_t* locations, const scalar_t* weights,
                     const scalar_t* grad_output, scalar_t* grad_value_splits, scalar_t* grad_locations,
                     scalar_t* grad_weights) {
  const int64_t row_stride = g.heads * g.channels;
  const int64_t points_per_head = g.levels * g.points;
  const int64_t slices = g.batch * g.heads;
  const int64_t value_numel = g.batch * g.spatial * row_stride;
  // One task = one (query range, batch, head): it owns that head's slice of its grad_value copy, so no atomics.
  at::parallel_for(0, splits * slices, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t split = task / slices;
      const int64_t b = (task % slices) / g.heads;
      const int64_t h = task % g.heads;
      const int64_t q_begin = split * g.queries / splits;
      const int64_t q_end = (split + 1) * g.queries / splits;
      scalar_t* grad_value = grad_value_splits + split * value_numel;
      for (int64_t q = q_begin; q < q_end; ++q) {
        const int64_t head_item = (b * g.queries + q) * g.heads + h;
        const scalar_t* grad_out = grad_output + head_item * g.channels;
        const scalar_t* head_locations = locations + head_item * points_per_head * 2;
        const scalar_t* head_weights = weights + head_item * points_per_head;
        scalar_t* head_grad_locations = grad_locations + head_item * points_per_head * 2;
        scalar_t* head_grad_weights = grad_weights + head_item * points_per_head;
        for (int64_t l = 0; l < g.levels; ++l) {
          const int64_t height = shapes[2 * l];
          const int64_t width = shapes[2 * l + 1];
          const int64_t level_offset = ((b * g.spatial + starts[l]) * g.heads + h) * g.channels;
          const scalar_t* level_value = value + level_offset;
          scalar_t* level_grad_value = grad_value + level_offset;
          for (int64_t p = 0; p < g.points; ++p) {
            const int64_t point = l * g.points + p;
            const auto corners =
                bilinear_corners<scalar_t>(head_locations[2 * point], head_locations[2 * point + 1], height, width);
            if (!corners.inside) {
              continue;  // gradients stay zero: the point reads only padding
            }
            const scalar_t attention = head_weights[point];
            scalar_t corner_dot[4] = {0, 0, 0, 0};  // grad_out . value at each corner
            for (int k = 0; k < 4; ++k) {
              if (corners.index[k] >= 0) {
                const int64_t row = corners.index[k] * row_stride;
                corner_dot[k] = dot_and_scatter(grad_out, level_value + row, level_grad_value + row,
                                                attention * corners.weight[k], g.channels);
              }
            }
            scalar_t sampled_dot = 0;  // grad_out . bilinear sample
            for (int k = 0; k < 4; ++k) {
              sampled_dot += corners.weight[k] * corner_dot[k];
            }
            head_grad_weights[point] = sampled_dot;
            scalar_t grad_x;
            scalar_t grad_y;
            bilinear_location_grad(corners, corner_dot, height, width, &grad_x, &grad_y);
            head_grad_locations[2 * point] = attention * grad_x;
            head_grad_locations[2 * point + 1] = attention * grad_y;
          }
        }
      }
    }
  });
}

}  // namespace

at::Tensor forward_cpu(const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
                       const at::Tensor& sampling_locations, const at::Tensor& attention_weights) {
  check_cpu_inputs(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
  const Geometry g = read_geometry(value, sampling_locations);
  auto output = at::zeros({g.batch, g.queries, g.heads * g.channels}, value.options());  // B x Q x heads*C
  AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "omg_msda_forward_cpu", [&] {
    forward_kernel<scalar_t>(g, value.const_data_ptr<scalar_t>(), spatial_shapes.const_data_ptr<int64_t>(),
                             level_start_index.const_data_ptr<int64_t>(),
                             sampling_locations.const_data_ptr<scalar_t>(),
                             attention_weights.const_data_ptr<scalar_t>(), output.mutable_data_ptr<scalar_t>());
  });
  return output;
}

std::vector<at::Tensor> backward_cpu(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                     const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                                     const at::Tensor& attention_weights, const at::Tensor& grad_output) {
  check_cpu_inputs(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
  TORCH_CHECK(grad_output.device().is_cpu() && grad_output.is_contiguous() &&
                  grad_output.scalar_type() == value.scalar_type(),
              "omg_msda: grad_output must be a contiguous CPU tensor of the value dtype");
  const Geometry g = read_geometry(value, sampling_locations);
  const int64_t splits = query_splits(g);
  // splits x B x S x heads x C: one grad_value copy per query range (a view of the result when there is one range).
  auto grad_value_splits = at::zeros({splits, g.batch, g.spatial, g.heads, g.channels}, value.options());
  auto grad_locations = at::zeros_like(sampling_locations);
  auto grad_weights = at::zeros_like(attention_weights);
  AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "omg_msda_backward_cpu", [&] {
    backward_kernel<scalar_t>(g, splits, value.const_data_ptr<scalar_t>(), spatial_shapes.const_data_ptr<int64_t>(),
                              level_start_index.const_data_ptr<int64_t>(),
                              sampling_locations.const_data_ptr<scalar_t>(),
                              attention_weights.const_data_ptr<scalar_t>(), grad_output.const_data_ptr<scalar_t>(),
                              grad_value_splits.mutable_data_ptr<scalar_t>(),
                              grad_locations.mutable_data_ptr<scalar_t>(), grad_weights.mutable_data_ptr<scalar_t>());
  });
  auto grad_value = splits == 1 ? grad_value_splits.squeeze(0) : grad_value_splits.sum(0);
  return {grad_value, grad_locations, grad_weights};
}

}  // namespace omg_msda
