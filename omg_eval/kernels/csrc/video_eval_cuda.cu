// CUDA kernels of the video metrics; same counts as the CPU kernels in video_eval.cpp.
#include <torch/extension.h>

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>

#include <cstdint>

namespace {

constexpr int kThreads = 256;

// One block row per (pred, gt) pair; blocks along x stride over the pixels. Bytes are 0/1, so AND counts overlaps.
__global__ void track_intersections_kernel(const uint8_t* __restrict__ pred, const uint8_t* __restrict__ gt,
                                           int64_t num_gt, int64_t num_pixels,
                                           unsigned long long* __restrict__ out) {
  const int64_t pair = blockIdx.y;
  const uint8_t* pred_row = pred + (pair / num_gt) * num_pixels;
  const uint8_t* gt_row = gt + (pair % num_gt) * num_pixels;
  unsigned long long count = 0;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < num_pixels; i += (int64_t)gridDim.x * blockDim.x) {
    count += (pred_row[i] & gt_row[i]);
  }
  for (int offset = 16; offset > 0; offset >>= 1) count += __shfl_down_sync(0xffffffff, count, offset);
  if ((threadIdx.x & 31) == 0 && count) atomicAdd(out + pair, count);
}

__device__ uint8_t boundary_at(const uint8_t* seg, int64_t height, int64_t width, int64_t y, int64_t x) {
  const uint8_t here = seg[y * width + x] != 0;
  const uint8_t east = x + 1 < width ? seg[y * width + x + 1] != 0 : 0;
  const uint8_t south = y + 1 < height ? seg[(y + 1) * width + x] != 0 : 0;
  const uint8_t south_east = (x + 1 < width && y + 1 < height) ? seg[(y + 1) * width + x + 1] != 0 : 0;
  if (y == height - 1 && x == width - 1) return 0;
  if (x == width - 1) return here ^ south;
  if (y == height - 1) return here ^ east;
  return (here ^ east) | (here ^ south) | (here ^ south_east);
}

__global__ void boundary_map_kernel(const uint8_t* __restrict__ seg, int64_t batch, int64_t height, int64_t width,
                                    uint8_t* __restrict__ bmap) {
  const int64_t index = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  const int64_t pixels = height * width;
  if (index >= batch * pixels) return;
  const int64_t item = index / pixels, y = (index % pixels) / width, x = index % width;
  bmap[index] = boundary_at(seg + item * pixels, height, width, y, x);
}

// counts[item] += [n_fg, n_gt, fg pixels near a gt boundary, gt pixels near a fg boundary].
__global__ void boundary_match_kernel(const uint8_t* __restrict__ fg_bmap, const uint8_t* __restrict__ gt_bmap,
                                      int64_t batch, int64_t height, int64_t width, int64_t radius,
                                      unsigned long long* __restrict__ counts) {
  const int64_t index = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  const int64_t pixels = height * width;
  if (index >= batch * pixels) return;
  const int64_t item = index / pixels, y = (index % pixels) / width, x = index % width;
  const uint8_t on_fg = fg_bmap[index], on_gt = gt_bmap[index];
  if (!on_fg && !on_gt) return;
  const uint8_t* fg_item = fg_bmap + item * pixels;
  const uint8_t* gt_item = gt_bmap + item * pixels;
  bool fg_near_gt = false, gt_near_fg = false;
  for (int64_t dy = -radius; dy <= radius; ++dy) {
    const int64_t yy = y + dy;
    if (yy < 0 || yy >= height) continue;
    for (int64_t dx = -radius; dx <= radius; ++dx) {
      const int64_t xx = x + dx;
      if (xx < 0 || xx >= width || dx * dx + dy * dy > radius * radius) continue;
      fg_near_gt |= on_fg && gt_item[yy * width + xx];
      gt_near_fg |= on_gt && fg_item[yy * width + xx];
    }
  }
  unsigned long long* row = counts + item * 4;
  if (on_fg) atomicAdd(row + 0, 1ULL);
  if (on_gt) atomicAdd(row + 1, 1ULL);
  if (fg_near_gt) atomicAdd(row + 2, 1ULL);
  if (gt_near_fg) atomicAdd(row + 3, 1ULL);
}

}  // namespace

torch::Tensor track_intersections_cuda(const torch::Tensor& pred, const torch::Tensor& gt) {
  const int64_t num_pred = pred.size(0), num_gt = gt.size(0), num_pixels = pred.size(1);
  auto out = torch::zeros({num_pred, num_gt}, pred.options().dtype(torch::kInt64));
  if (num_pred == 0 || num_gt == 0 || num_pixels == 0) return out;
  const int64_t blocks_x = std::min<int64_t>((num_pixels + kThreads - 1) / kThreads, 1024);
  const dim3 grid(static_cast<unsigned>(blocks_x), static_cast<unsigned>(num_pred * num_gt));
  track_intersections_kernel<<<grid, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
      reinterpret_cast<const uint8_t*>(pred.data_ptr<bool>()), reinterpret_cast<const uint8_t*>(gt.data_ptr<bool>()),
      num_gt, num_pixels, reinterpret_cast<unsigned long long*>(out.data_ptr<int64_t>()));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

torch::Tensor boundary_match_counts_cuda(const torch::Tensor& fg, const torch::Tensor& gt, int64_t radius) {
  const int64_t batch = fg.size(0), height = fg.size(1), width = fg.size(2);
  auto counts = torch::zeros({batch, 4}, fg.options().dtype(torch::kInt64));
  const int64_t total = batch * height * width;
  if (total == 0) return counts;
  auto fg_bmap = torch::empty({batch, height, width}, fg.options().dtype(torch::kUInt8));
  auto gt_bmap = torch::empty_like(fg_bmap);
  const int64_t blocks = (total + kThreads - 1) / kThreads;
  auto stream = c10::cuda::getCurrentCUDAStream();
  boundary_map_kernel<<<blocks, kThreads, 0, stream>>>(reinterpret_cast<const uint8_t*>(fg.data_ptr<bool>()), batch,
                                                       height, width, fg_bmap.data_ptr<uint8_t>());
  boundary_map_kernel<<<blocks, kThreads, 0, stream>>>(reinterpret_cast<const uint8_t*>(gt.data_ptr<bool>()), batch,
                                                       height, width, gt_bmap.data_ptr<uint8_t>());
  boundary_match_kernel<<<blocks, kThreads, 0, stream>>>(fg_bmap.data_ptr<uint8_t>(), gt_bmap.data_ptr<uint8_t>(),
                                                         batch, height, width, radius,
                                                         reinterpret_cast<unsigned long long*>(counts.data_ptr<int64_t>()));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return counts;
}
