// CUDA kernels of the evaluation harness, compiled only where CUDA is usable (the C++ side then gets -DWITH_CUDA and
// dispatches CUDA tensors here). Results equal the CPU kernel and the PyTorch formulation exactly (integer counts).

#include <torch/extension.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <cstdint>
#include "../../../omg_common/csrc/omg_check.h"  // OMG_CHECK: error messages that cannot crash

namespace {

// One thread per pixel, grid-stride; a block first counts into shared memory when the matrix fits there, so most
// atomics stay on-chip (COCO-stuff and ADE have 150-171 classes: 29 K cells of 8 bytes do not fit, then global).
template <typename gt_t, typename pred_t>
__global__ void confusion_kernel(const gt_t* __restrict__ gt, const pred_t* __restrict__ pred, int64_t n,
                                 int64_t num_classes, int64_t ignore_index, bool use_shared,
                                 unsigned long long* __restrict__ out, int* __restrict__ out_of_range) {
  extern __shared__ unsigned long long shared_counts[];
  const int64_t cells = num_classes * num_classes;
  if (use_shared) {
    for (int64_t c = threadIdx.x; c < cells; c += blockDim.x) shared_counts[c] = 0;
    __syncthreads();
  }
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t g = static_cast<int64_t>(gt[i]);
    if (ignore_index >= 0 && g == ignore_index) continue;
    const int64_t p = static_cast<int64_t>(pred[i]);
    if (g < 0 || g >= num_classes || p < 0 || p >= num_classes) {
      atomicExch(out_of_range, 1);
      continue;
    }
    atomicAdd(use_shared ? &shared_counts[g * num_classes + p] : &out[g * num_classes + p], 1ULL);
  }
  if (use_shared) {
    __syncthreads();
    for (int64_t c = threadIdx.x; c < cells; c += blockDim.x) {
      if (shared_counts[c]) atomicAdd(&out[c], shared_counts[c]);
    }
  }
}

}  // namespace

// (K, K) int64 confusion matrix of CUDA label tensors; an empty tensor when a label is outside [0, K) (the Python
// side then raises the detailed error through the PyTorch formulation).
torch::Tensor confusion_matrix_cuda(const torch::Tensor& gt_labels, const torch::Tensor& pred_labels,
                                    int64_t num_classes, int64_t ignore_index) {
  OMG_CHECK(gt_labels.is_cuda() && pred_labels.is_cuda(), "confusion_matrix_cuda: CUDA tensors only");
  const c10::cuda::CUDAGuard device_guard(gt_labels.device());
  torch::Tensor gt = gt_labels.contiguous();
  torch::Tensor pred = pred_labels.contiguous();
  const int64_t n = gt.numel();
  auto options = torch::TensorOptions().device(gt.device());
  torch::Tensor counts = torch::zeros({num_classes * num_classes}, options.dtype(torch::kInt64));
  torch::Tensor out_of_range = torch::zeros({1}, options.dtype(torch::kInt32));
  if (n > 0) {
    const int threads = 256;
    const int64_t wanted_blocks = (n + threads - 1) / threads;
    const int blocks = static_cast<int>(std::min<int64_t>(wanted_blocks, 4096));
    const size_t shared_bytes = static_cast<size_t>(num_classes * num_classes) * sizeof(unsigned long long);
    const bool use_shared = shared_bytes <= 32 * 1024;
    cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_INTEGRAL_TYPES(gt.scalar_type(), "confusion_cuda_gt", [&] {
      using gt_t = scalar_t;
      AT_DISPATCH_INTEGRAL_TYPES(pred.scalar_type(), "confusion_cuda_pred", [&] {
        confusion_kernel<gt_t, scalar_t><<<blocks, threads, use_shared ? shared_bytes : 0, stream>>>(
            gt.data_ptr<gt_t>(), pred.data_ptr<scalar_t>(), n, num_classes, ignore_index, use_shared,
            reinterpret_cast<unsigned long long*>(counts.data_ptr<int64_t>()), out_of_range.data_ptr<int>());
      });
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  if (out_of_range.item<int>() != 0) return torch::empty({0}, options.dtype(torch::kInt64));
  return counts.view({num_classes, num_classes});
}
