// Python bindings of the multi-scale deformable attention kernels: route each call to the CPU or CUDA kernel.
#include "ms_deform_attn.h"

#include <torch/extension.h>
#include "../../../omg_common/csrc/omg_check.h"  // OMG_CHECK: error messages that cannot crash

namespace omg_msda {
namespace {

bool built_with_cuda() {
#ifdef WITH_CUDA
  return true;
#else
  return false;
#endif
}

[[noreturn]] void fail_without_cuda() {
  OMG_CHECK(false,
            "omg_msda was built without CUDA (no GPU or nvcc at build time); rebuild it on a CUDA machine "
            "or set OMG_MSDA_BACKEND=reference");
}

at::Tensor forward(const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
                   const at::Tensor& sampling_locations, const at::Tensor& attention_weights) {
  if (value.is_cuda()) {
#ifdef WITH_CUDA
    return forward_cuda(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
#else
    fail_without_cuda();
#endif
  }
  return forward_cpu(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
}

std::vector<at::Tensor> backward(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                 const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                                 const at::Tensor& attention_weights, const at::Tensor& grad_output) {
  if (value.is_cuda()) {
#ifdef WITH_CUDA
    return backward_cuda(value, spatial_shapes, level_start_index, sampling_locations, attention_weights,
                         grad_output);
#else
    fail_without_cuda();
#endif
  }
  return backward_cpu(value, spatial_shapes, level_start_index, sampling_locations, attention_weights, grad_output);
}

}  // namespace
}  // namespace omg_msda

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Fused multi-scale deformable attention (Deformable-DETR) for OMG";
  m.def("forward", &omg_msda::forward, "forward: (value, spatial_shapes, level_start_index, locations, weights) -> out");
  m.def("backward", &omg_msda::backward,
        "backward: (value, spatial_shapes, level_start_index, locations, weights, grad_out) -> "
        "[grad_value, grad_locations, grad_weights]");
  m.def("built_with_cuda", &omg_msda::built_with_cuda, "whether the CUDA kernels were compiled in");
  m.def("select_cpu_kernels", &omg_msda::select_cpu_kernels, py::arg("baseline_only"),
        "restrict CPU kernels to the baseline SSE2 copy (True) or allow AVX2 (False); returns whether AVX2 is used");
}
