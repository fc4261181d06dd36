"""Counting kernels shared by the metrics. Each public function picks the fused C++/CUDA kernel when available
(``OMG_EVAL_BACKEND=fused|torch`` overrides) and otherwise runs a pure-PyTorch formulation with identical results."""
