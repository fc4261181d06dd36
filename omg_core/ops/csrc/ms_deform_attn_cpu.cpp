// CPU kernels of multi-scale deformable attention (forward and backward), parallelised over torch's thread pool.
//
// Both kernels walk the sampling points of one (batch, query, head) at a time and do all per-point work over the C
// channels of a head in a single contiguous loop, which the compiler vectorises (value rows are C contiguous floats).
// The backward scatters into grad_value; instead of atomics, each task owns a (batch, head) slice of grad_value, and
// when there are fewer slices than threads the queries are split further, each split writing its own copy that is
// summed at the end. The kernel bodies live in ms_deform_attn_cpu_kernels.h, compiled here once per instruction set.
#include "ms_deform_attn.h"
#include "ms_deform_attn_bilinear.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>

#include <algorithm>
#include <atomic>
#include <vector>

namespace omg_msda {
namespace {

void check_cpu_inputs(const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
                      const at::Tensor& sampling_locations, const at::Tensor& attention_weights) {
  for (const at::Tensor* tensor : {&value, &spatial_shapes, &level_start_index, &sampling_locations,
                                   &attention_weights}) {
    OMG_CHECK(tensor->device().is_cpu(), "omg_msda CPU kernel got a tensor on ", tensor->device());
    OMG_CHECK(tensor->is_contiguous(), "omg_msda CPU kernel needs contiguous tensors (the dispatcher makes them so)");
  }
  check_layout(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
  OMG_CHECK(spatial_shapes.scalar_type() == at::kLong && level_start_index.scalar_type() == at::kLong,
            "omg_msda: spatial_shapes and level_start_index must be int64");
  OMG_CHECK(sampling_locations.scalar_type() == value.scalar_type() &&
                attention_weights.scalar_type() == value.scalar_type(),
            "omg_msda: value, sampling_locations and attention_weights must share one dtype");
}

// Below this many multiply-adds a chunk is not worth handing to another thread (a few tens of microseconds).
constexpr int64_t kMinWorkPerTask = 1 << 16;
// Below this many multiply-adds a whole call (about a millisecond on one core) runs on the calling thread: joining
// a parallel region costs little on an idle machine but milliseconds on a busy one (a descheduled worker holds up
// the join), which would make small calls, like a decoder's 100 queries, slower than doing them serially.
constexpr int64_t kMinParallelWork = 1 << 22;

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
  if (threads == 1 || items < 2 || items * work_per_item < kMinParallelWork || at::in_parallel_region()) {
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

// How many query ranges to cut each (batch, head) slice into so that every thread has work.
int64_t query_splits(const Geometry& g) {
  const int64_t slices = g.batch * g.heads;
  const int64_t threads = at::get_num_threads();
  const int64_t total_work = g.batch * g.queries * g.heads * g.levels * g.points * 4 * g.channels;
  if (slices >= threads || g.queries < 2 || total_work < kMinParallelWork) {
    return 1;
  }
  return std::min<int64_t>((threads + slices - 1) / slices, g.queries);
}

}  // namespace

// One copy of the kernels per instruction set. The AVX2 + FMA copy is compiled with a target pragma rather than a
// global -mavx2, so the extension still loads on any x86-64 CPU and picks its copy at run time; the wider vectors
// make the channel loops about a quarter faster.
namespace {
namespace baseline {
#include "ms_deform_attn_cpu_kernels.h"
}  // namespace baseline
}  // namespace

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace {
namespace avx2 {
#include "ms_deform_attn_cpu_kernels.h"
#include "../../../omg_common/csrc/omg_check.h"  // OMG_CHECK: error messages that cannot crash
}  // namespace avx2
}  // namespace
#pragma GCC pop_options

namespace {
bool cpu_has_avx2() {
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return supported;
}
}  // namespace
#else
namespace {
namespace avx2 = baseline;
bool cpu_has_avx2() { return false; }
}  // namespace
#endif

namespace {
std::atomic<bool> baseline_forced{false};  // tests run both copies of the kernels on machines that have AVX2

bool use_avx2_kernels() { return cpu_has_avx2() && !baseline_forced.load(std::memory_order_relaxed); }
}  // namespace

bool select_cpu_kernels(bool baseline_only) {
  baseline_forced.store(baseline_only);
  return use_avx2_kernels();
}

at::Tensor forward_cpu(const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
                       const at::Tensor& sampling_locations, const at::Tensor& attention_weights) {
  check_cpu_inputs(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
  const Geometry g = read_geometry(value, sampling_locations);
  // B x Q x heads*C. Allocated uninitialised and zeroed by the kernel's own tasks: a separate fill would be one more
  // parallel region to join, which on a busy machine costs more than a small call itself.
  auto output = at::empty({g.batch, g.queries, g.heads * g.channels}, value.options());
  AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "omg_msda_forward_cpu", [&] {
    const auto kernel = use_avx2_kernels() ? &avx2::forward_kernel<scalar_t> : &baseline::forward_kernel<scalar_t>;
    kernel(g, value.const_data_ptr<scalar_t>(), spatial_shapes.const_data_ptr<int64_t>(),
           level_start_index.const_data_ptr<int64_t>(), sampling_locations.const_data_ptr<scalar_t>(),
           attention_weights.const_data_ptr<scalar_t>(), output.mutable_data_ptr<scalar_t>());
  });
  return output;
}

std::vector<at::Tensor> backward_cpu(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                     const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                                     const at::Tensor& attention_weights, const at::Tensor& grad_output) {
  check_cpu_inputs(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
  OMG_CHECK(grad_output.device().is_cpu() && grad_output.is_contiguous() &&
                grad_output.scalar_type() == value.scalar_type(),
            "omg_msda: grad_output must be a contiguous CPU tensor of the value dtype");
  const Geometry g = read_geometry(value, sampling_locations);
  const int64_t splits = query_splits(g);
  // splits x B x S x heads x C: one grad_value copy per query range (a view of the result when there is one range).
  // Every element of these is written by the kernel's tasks (zeros included), as in the forward.
  auto grad_value_splits = at::empty({splits, g.batch, g.spatial, g.heads, g.channels}, value.options());
  auto grad_locations = at::empty_like(sampling_locations);
  auto grad_weights = at::empty_like(attention_weights);
  AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "omg_msda_backward_cpu", [&] {
    const auto kernel = use_avx2_kernels() ? &avx2::backward_kernel<scalar_t> : &baseline::backward_kernel<scalar_t>;
    kernel(g, splits, value.const_data_ptr<scalar_t>(), spatial_shapes.const_data_ptr<int64_t>(),
           level_start_index.const_data_ptr<int64_t>(), sampling_locations.const_data_ptr<scalar_t>(),
           attention_weights.const_data_ptr<scalar_t>(), grad_output.const_data_ptr<scalar_t>(),
           grad_value_splits.mutable_data_ptr<scalar_t>(), grad_locations.mutable_data_ptr<scalar_t>(),
           grad_weights.mutable_data_ptr<scalar_t>());
  });
  auto grad_value = splits == 1 ? grad_value_splits.squeeze(0) : grad_value_splits.sum(0);
  return {grad_value, grad_locations, grad_weights};
}

}  // namespace omg_msda
