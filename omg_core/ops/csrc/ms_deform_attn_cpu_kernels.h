// Kernel bodies of the CPU multi-scale deformable attention, included by ms_deform_attn_cpu.cpp once per instruction
// set (baseline x86-64 / SSE2, and AVX2 + FMA where the CPU has it), each time inside its own namespace. No include
// guard on purpose; nothing else should include this file. It relies on Geometry, CornerRows, parallel_chunks and
// the bilinear helpers defined before the inclusion.

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
        std::fill(out, out + g.channels, scalar_t(0));  // output is allocated uninitialised
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
      // grad_value is allocated uninitialised; this task zeroes the head slice it owns (one C-row per position).
      for (int64_t position = 0; position < g.spatial; ++position) {
        scalar_t* row = grad_value + ((b * g.spatial + position) * g.heads + h) * g.channels;
        std::fill(row, row + g.channels, scalar_t(0));
      }
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
              // the point reads only padding: no gradient (the buffers are allocated uninitialised)
              head_grad_weights[point] = 0;
              head_grad_locations[2 * point] = 0;
              head_grad_locations[2 * point + 1] = 0;
              continue;
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

