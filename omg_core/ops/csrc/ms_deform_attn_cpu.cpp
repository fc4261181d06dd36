// CPU kernels of multi-scale deformable attention (forward and backward), parallelised over torch's thread pool.
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
#include <atomic>
#include <vector>

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
  check_layout(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
  TORCH_CHECK(spatial_shapes.scalar_type() == at::kLong && level_start_index.scalar_type() == at::kLong,
              "omg_msda: spatial_shapes and level_start_index must be int64");
  TORCH_CHECK(sampling_locations.scalar_type() == value.scalar_type() &&
                  attention_weights.scalar_type() == value.scalar_type(),
              "omg_msda: value, sampling_locations and attention_weights must share one dtype");
}

// Below this many multiply-adds a task is not worth waking another thread for (a few tens of microseconds).
constexpr int64_t kMinWorkPerTask = 1 << 16;

// Items per chunk so that every chunk holds at least kMinWorkPerTask of work.
int64_t min_items_per_chunk(int64_t work_per_item) {
  return std::max<int64_t>(1, kMinWorkPerTask / std::max<int64_t>(1, work_per_item));
}

// Runs body(begin, end) over [0, items) in chunks that the threads claim one at a time. at::parallel_for alone would
// hand each thread one fixed share, so on a shared machine a thread the OS delays would stall the whole call for its
// share; here it holds up at most one chunk. Calls with little work run inline on the calling thread.
template <typename Body>
void parallel_chunks(int64_t items, int64_t work_per_item, const Body& body) {
  const int64_t threads = at::get_num_threads();
  if (threads == 1 || items < 2 || items * work_per_item < 2 * kMinWorkPerTask || at::in_parallel_region()) {
    body(0, items);
    return;
  }
  const int64_t chunk = std::max(min_items_per_chunk(work_per_item), items / (threads * 8));  // ~8 chunks a thread
  const int64_t chunks = (items + chunk - 1) / chunk;
  std::atomic<int64_t> next_chunk{0};
  at::parallel_for(0, std::min(threads, chunks), 1, [&](int64_t, int64_t) {
    for (int64_t c = next_chunk.fetch_add(1); c < chunks; c = next_chunk.fetch_add(1)) {
      body(c * chunk, std::min(items, (c + 1) * chunk));
    }
  });
}

// The four corner rows of one sampling point with their scaled weights (attention * bilinear weight). Corners
// outside the map point at a zero row with weight zero, so the channel loops below run branch-free over all four
// without ever reading or writing another pixel.
template <typename scalar_t>
struct CornerRows {
  const scalar_t* row[4];
  scalar_t* grad_row[4];  // backward only: where each corner's gradient goes (a scratch row when outside)
  scalar_t scale[4];
};

// out[c] += sum_k scale_k * row_k[c] over one head's channels.
template <typename scalar_t>
inline void gather_corners(scalar_t* __restrict__ out, const CornerRows<scalar_t>& corners, int64_t channels) {
  const scalar_t* __restrict__ row0 = corners.row[0];
  const scalar_t* __restrict__ row1 = corners.row[1];
  const scalar_t* __restrict__ row2 = corners.row[2];
  const scalar_t* __restrict__ row3 = corners.row[3];
  const scalar_t s0 = corners.scale[0], s1 = corners.scale[1], s2 = corners.scale[2], s3 = corners.scale[3];
#pragma omp simd
  for (int64_t c = 0; c < channels; ++c) {
    out[c] += s0 * row0[c] + s1 * row1[c] + s2 * row2[c] + s3 * row3[c];
  }
}

// In one pass over the channels: dot[k] = sum_c grad_out[c] * row_k[c], and grad_row_k[c] += scale_k * grad_out[c].
template <typename scalar_t>
inline void scatter_corners(const scalar_t* __restrict__ grad_out, const CornerRows<scalar_t>& corners,
                            int64_t channels, scalar_t dot[4]) {
  const scalar_t* __restrict__ row0 = corners.row[0];
  const scalar_t* __restrict__ row1 = corners.row[1];
  const scalar_t* __restrict__ row2 = corners.row[2];
  const scalar_t* __restrict__ row3 = corners.row[3];
  scalar_t* __restrict__ grad0 = corners.grad_row[0];
  scalar_t* __restrict__ grad1 = corners.grad_row[1];
  scalar_t* __restrict__ grad2 = corners.grad_row[2];
  scalar_t* __restrict__ grad3 = corners.grad_row[3];
  const scalar_t s0 = corners.scale[0], s1 = corners.scale[1], s2 = corners.scale[2], s3 = corners.scale[3];
  scalar_t d0 = 0, d1 = 0, d2 = 0, d3 = 0;
#pragma omp simd reduction(+ : d0, d1, d2, d3)
  for (int64_t c = 0; c < channels; ++c) {
    const scalar_t g = grad_out[c];
    d0 += g * row0[c];
    d1 += g * row1[c];
    d2 += g * row2[c];
    d3 += g * row3[c];
    grad0[c] += s0 * g;
    grad1[c] += s1 * g;
    grad2[c] += s2 * g;
    grad3[c] += s3 * g;
  }
  dot[0] = d0;
  dot[1] = d1;
  dot[2] = d2;
  dot[3] = d3;
}

template <typename scalar_t>
void forward_kernel(const Geometry& g, const scalar_t* value, const int64_t* shapes, const int64_t* starts,
                    const scalar_t* locations, const scalar_t* weights, scalar_t* output) {
  const int64_t row_stride = g.heads * g.channels;  // distance between two spatial positions in value
  const int64_t points_per_head = g.levels * g.points;
  const std::vector<scalar_t> zero_row(g.channels, scalar_t(0));  // stands in for corners outside the map
  const int64_t work_per_item = g.heads * points_per_head * 4 * g.channels;
  // One task = one (batch, query); it writes heads * C outputs nobody else touches.
  parallel_chunks(g.batch * g.queries, work_per_item, [&](int64_t begin, int64_t end) {
    CornerRows<scalar_t> rows;
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
              const bool in_map = corners.index[k] >= 0;
              rows.row[k] = in_map ? level_value + corners.index[k] * row_stride : zero_row.data();
              rows.scale[k] = in_map ? attention * corners.weight[k] : scalar_t(0);
            }
            gather_corners(out, rows, g.channels);
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
  const int64_t total_work = g.batch * g.queries * g.heads * g.levels * g.points * 4 * g.channels;
  if (slices >= threads || g.queries < 2 || total_work < 2 * kMinWorkPerTask) {
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
  const std::vector<scalar_t> zero_row(g.channels, scalar_t(0));  // stands in for corners outside the map
  const int64_t work_per_task = (g.queries / splits) * points_per_head * 4 * g.channels;
  // One task = one (query range, batch, head): it owns that head's slice of its grad_value copy, so no atomics.
  parallel_chunks(splits * slices, work_per_task, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> scratch_row(g.channels);  // receives the (zero-weighted) gradient of outside corners
    CornerRows<scalar_t> rows;
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
            for (int k = 0; k < 4; ++k) {
              const bool in_map = corners.index[k] >= 0;
              const int64_t row = corners.index[k] * row_stride;
              rows.row[k] = in_map ? level_value + row : zero_row.data();
              rows.grad_row[k] = in_map ? level_grad_value + row : scratch_row.data();
              rows.scale[k] = in_map ? attention * corners.weight[k] : scalar_t(0);
            }
            scalar_t corner_dot[4];  // grad_out . value at each corner (zero for outside corners)
            scatter_corners(grad_out, rows, g.channels, corner_dot);
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
