// thunder-rs's C++ shim: libtorch entry points that tch 0.24 does not expose, behind a C ABI.
//
// Tensors cross as `at::Tensor*`, which is what tch's `Tensor::as_ptr` returns (torch-sys's
// `tensor` type). Each function returns NULL on success, or a message that the caller frees with
// `thunder_shim_free` when libtorch throws: no C++ exception crosses into Rust.

#include <ATen/core/Tensor.h>
#include <ATen/cuda/CUDAGraph.h>
#include <ATen/SDPBackend.h>
#include <ATen/ops/_fused_adamw.h>
#include <ATen/ops/_fused_sdp_choice.h>
#include <ATen/ops/_scaled_dot_product_cudnn_attention.h>
#include <ATen/ops/_scaled_dot_product_cudnn_attention_backward.h>
#include <ATen/ops/_scaled_dot_product_efficient_attention.h>
#include <ATen/ops/_scaled_dot_product_efficient_attention_backward.h>
#include <ATen/ops/_scaled_dot_product_flash_attention.h>
#include <ATen/ops/_scaled_dot_product_flash_attention_backward.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/core/CachingDeviceAllocator.h>
#include <c10/util/Exception.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <tuple>
#include <vector>

namespace {

char* copy_message(const char* m) {
  size_t n = std::strlen(m);
  char* out = static_cast<char*>(std::malloc(n + 1));
  if (out != nullptr) {
    std::memcpy(out, m, n + 1);
  }
  return out;
}

std::vector<at::Tensor> list(at::Tensor* const* ts, size_t n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(*ts[i]);
  }
  return out;
}

// Runs `f`, returning NULL, or the message of the exception it threw (malloc'ed).
template <class F>
char* guarded(F f) {
  try {
    f();
    return nullptr;
  } catch (const c10::Error& e) {
    return copy_message(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return copy_message(e.what());
  } catch (...) {
    return copy_message("unknown C++ exception");
  }
}

}  // namespace

extern "C" {

void thunder_shim_free(char* message) { std::free(message); }

// `torch._fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, [], [step] * n, lr=..., beta1=...,
// beta2=..., weight_decay=..., eps=..., amsgrad=False, maximize=False)`: one AdamW step, in place.
// All tensors of one call share a dtype and a device; `step` holds the step number (already
// counted), read by every parameter.
char* thunder_fused_adamw_(at::Tensor* const* params, at::Tensor* const* grads,
                           at::Tensor* const* exp_avgs, at::Tensor* const* exp_avg_sqs,
                           const at::Tensor* step, size_t n, double lr, double beta1, double beta2,
                           double weight_decay, double eps) {
  return guarded([&] {
    std::vector<at::Tensor> steps(n, *step);
    at::_fused_adamw_(list(params, n), list(grads, n), list(exp_avgs, n), list(exp_avg_sqs, n),
                      {}, steps, lr, beta1, beta2, weight_decay, eps, /*amsgrad=*/false,
                      /*maximize=*/false);
  });
}

// The CUDA caching allocator's statistics of `device`, as `torch.cuda.memory_stats` gives them:
// `out[0..4]` = allocated bytes now, allocated bytes at peak, reserved bytes now, reserved bytes
// at peak (all pools).
char* thunder_cuda_memory_stats(int device, int64_t* out) {
  return guarded([&] {
    auto* a = c10::getDeviceAllocator(c10::DeviceType::CUDA);
    auto stats = a->getDeviceStats(static_cast<c10::DeviceIndex>(device));
    const auto all = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    out[0] = stats.allocated_bytes[all].current;
    out[1] = stats.allocated_bytes[all].peak;
    out[2] = stats.reserved_bytes[all].current;
    out[3] = stats.reserved_bytes[all].peak;
  });
}

// The gradients of `at::scaled_dot_product_attention(q, k, v, None, 0.0, is_causal, scale)`
// with respect to q, k and v for the output gradient `g`, through the fused kernel PyTorch
// itself picks (cuDNN, flash or memory-efficient): the forward runs again with its log-sum-exp
// (the trace keeps only the inputs), then the kernel's own backward, with the arguments
// PyTorch's autograd gives it. No autograd graph, and none of the kernels of differentiating
// `(out * g).sum()`. Without a mask only, without grouped-query attention, and for head dims
// that need no padding (multiples of 8). `*handled` = 0 when none of that applies (nothing is
// computed: the caller differentiates through autograd instead).
char* thunder_sdpa_backward(const at::Tensor* g, const at::Tensor* q, const at::Tensor* k,
                            const at::Tensor* v, int is_causal, double scale, int has_scale,
                            int* handled, at::Tensor** dq, at::Tensor** dk, at::Tensor** dv) {
  return guarded([&] {
    *handled = 0;
    if (q->size(-1) % 8 != 0 || v->size(-1) % 8 != 0 || q->dim() != 4) {
      return;
    }
    std::optional<double> s = has_scale ? std::optional<double>(scale) : std::nullopt;
    const bool causal = is_causal != 0;
    const auto choice = static_cast<at::SDPBackend>(
        at::_fused_sdp_choice(*q, *k, *v, std::nullopt, 0.0, causal, s, /*enable_gqa=*/false));
    at::Tensor gq, gk, gv;
    switch (choice) {
      case at::SDPBackend::cudnn_attention: {
        auto f = at::_scaled_dot_product_cudnn_attention(*q, *k, *v, std::nullopt,
                                                         /*compute_log_sumexp=*/true, 0.0, causal,
                                                         /*return_debug_mask=*/false, s);
        std::tie(gq, gk, gv) = at::_scaled_dot_product_cudnn_attention_backward(
            *g, *q, *k, *v, std::get<0>(f), std::get<1>(f), std::get<6>(f), std::get<7>(f),
            at::Tensor(), std::get<2>(f), std::get<3>(f), std::get<4>(f).expect_int(),
            std::get<5>(f).expect_int(), 0.0, causal, s);
        break;
      }
      case at::SDPBackend::flash_attention: {
        auto f = at::_scaled_dot_product_flash_attention(*q, *k, *v, 0.0, causal,
                                                         /*return_debug_mask=*/false, s);
        std::tie(gq, gk, gv) = at::_scaled_dot_product_flash_attention_backward(
            *g, *q, *k, *v, std::get<0>(f), std::get<1>(f), std::get<2>(f), std::get<3>(f),
            std::get<4>(f).expect_int(), std::get<5>(f).expect_int(), 0.0, causal,
            std::get<6>(f), std::get<7>(f), s);
        break;
      }
      case at::SDPBackend::efficient_attention: {
        auto f = at::_scaled_dot_product_efficient_attention(*q, *k, *v, std::nullopt,
                                                             /*compute_log_sumexp=*/true, 0.0,
                                                             causal, s);
        auto r = at::_scaled_dot_product_efficient_attention_backward(
            *g, *q, *k, *v, at::Tensor(), std::get<0>(f), std::get<1>(f), std::get<2>(f),
            std::get<3>(f), 0.0, {true, true, true, false}, causal, s);
        gq = std::get<0>(r);
        gk = std::get<1>(r);
        gv = std::get<2>(r);
        break;
      }
      default:
        return;
    }
    *dq = new at::Tensor(std::move(gq));
    *dk = new at::Tensor(std::move(gk));
    *dv = new at::Tensor(std::move(gv));
    *handled = 1;
  });
}

// `t.grad = None`: drops the gradient autograd accumulated (what `optimizer.zero_grad()` does).
char* thunder_clear_grad(at::Tensor* t) {
  return guarded([&] {
    t->mutable_grad().reset();
  });
}

// `torch.cuda.empty_cache()`: returns the allocator's unused cached blocks to the device.
char* thunder_cuda_empty_cache() {
  return guarded([&] {
    c10::getDeviceAllocator(c10::DeviceType::CUDA)->emptyCache();
  });
}

// `torch.cuda.reset_peak_memory_stats(device)`.
char* thunder_cuda_reset_peak_memory(int device) {
  return guarded([&] {
    c10::getDeviceAllocator(c10::DeviceType::CUDA)
        ->resetPeakStats(static_cast<c10::DeviceIndex>(device));
  });
}

// CUDA graphs (`torch.cuda.graph`): capture on a side stream into libtorch's caching allocator's
// private pool for the graph, then replay on the current stream. Only functions that libtorch
// exports are called here (no inline CUDA-runtime calls): the caller orders the streams.
struct ThunderGraph {
  at::cuda::CUDAGraph graph;
  c10::cuda::CUDAStream previous;
  c10::cuda::CUDAStream side;
  bool capturing = false;
  ThunderGraph(c10::cuda::CUDAStream p, c10::cuda::CUDAStream s) : previous(p), side(s) {}
};

// Prepares a capture on `device`: picks a side stream. `side` and `current` receive the raw
// stream handles; the caller makes `side` wait for `current` before `thunder_cuda_graph_start`.
char* thunder_cuda_graph_new(int device, void** out, void** side, void** current) {
  return guarded([&] {
    auto d = static_cast<c10::DeviceIndex>(device);
    auto prev = c10::cuda::getCurrentCUDAStream(d);
    auto s = c10::cuda::getStreamFromPool(false, d);
    auto* g = new ThunderGraph(prev, s);
    *side = s.stream();
    *current = prev.stream();
    *out = g;
  });
}

// Makes the side stream current and starts capturing: the allocator serves allocations on it
// from the graph's pool.
char* thunder_cuda_graph_start(void* g) {
  auto* graph = static_cast<ThunderGraph*>(g);
  return guarded([&] {
    // CUDAGraph captures libtorch's current device's current stream.
    c10::cuda::set_device(graph->side.device_index());
    c10::cuda::setCurrentCUDAStream(graph->side);
    try {
      graph->graph.capture_begin();
    } catch (...) {
      c10::cuda::setCurrentCUDAStream(graph->previous);
      throw;
    }
    graph->capturing = true;
  });
}

// Ends the capture and instantiates the graph; the previous current stream is current again.
// On failure (an operation that cannot be captured ran) the graph is unusable: free it.
char* thunder_cuda_graph_end(void* g) {
  auto* graph = static_cast<ThunderGraph*>(g);
  char* message = guarded([&] { graph->graph.capture_end(); });
  graph->capturing = false;
  char* restored = guarded([&] { c10::cuda::setCurrentCUDAStream(graph->previous); });
  if (message == nullptr) {
    return restored;
  }
  std::free(restored);
  return message;
}

// Replays the captured work on the current stream.
char* thunder_cuda_graph_replay(void* g) {
  return guarded([&] { static_cast<ThunderGraph*>(g)->graph.replay(); });
}

// Frees the graph (its pool's blocks go back once no tensor uses them). A capture still open is
// ended first.
void thunder_cuda_graph_free(void* g) {
  auto* graph = static_cast<ThunderGraph*>(g);
  if (graph->capturing) {
    std::free(thunder_cuda_graph_end(g));
  }
  std::free(guarded([&] { delete graph; }));
}

}  // extern "C"
