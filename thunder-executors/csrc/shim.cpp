// thunder-rs's C++ shim: libtorch entry points that tch 0.24 does not expose, behind a C ABI.
//
// Tensors cross as `at::Tensor*`, which is what tch's `Tensor::as_ptr` returns (torch-sys's
// `tensor` type). Each function returns NULL on success, or a message that the caller frees with
// `thunder_shim_free` when libtorch throws: no C++ exception crosses into Rust.

#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/zeros_like.h>
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
#include <torch/csrc/autograd/autograd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <exception>
#include <optional>
#include <string>
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

// ---- ATen operators called by name (`prims.aten`, `prims.aten_vjp`) ----

}  // extern "C"

// One argument of an ATen call, in schema order (see `AtenArg` in thunder-ir's ops/aten.rs).
struct ThunderAtenArg {
  int32_t kind;          // 0 None, 1 tensor, 2 tensor list, 3 bool, 4 int, 5 float, 6 string,
                         // 7 int list, 8 dtype (a c10::ScalarType), 9/10/11 an int/float/bool
                         // where the schema takes a tensor (a wrapped number)
  int64_t i;             // the bool, int, dtype, or the tensor's index
  double d;              // the float
  const int64_t* ints;   // the int list, or the tensor indices of a list (-1: None)
  size_t len;            // their count, or the string's length
  const char* str;       // the string (not NUL-terminated)
};

namespace {

c10::OperatorHandle find_op(const char* name, const char* overload) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(
      (std::string("aten::") + name).c_str(), overload);
}

at::Tensor tensor_at(const std::vector<at::Tensor>& ts, int64_t i) {
  TORCH_CHECK(i >= 0 && static_cast<size_t>(i) < ts.size(), "an ATen call refers to tensor ", i,
              " of ", ts.size());
  return ts[static_cast<size_t>(i)];
}

// The stack of a call: every argument of the schema, in order.
torch::jit::Stack make_stack(const c10::OperatorHandle& op, const ThunderAtenArg* args,
                             size_t nargs, const std::vector<at::Tensor>& ts) {
  const auto& schema = op.schema();
  TORCH_CHECK(schema.arguments().size() == nargs, schema.name(), " takes ",
              schema.arguments().size(), " arguments (", schema, "), the call gives ", nargs);
  torch::jit::Stack stack;
  stack.reserve(nargs);
  for (size_t k = 0; k < nargs; ++k) {
    const ThunderAtenArg& a = args[k];
    switch (a.kind) {
      case 0:
        stack.emplace_back();
        break;
      case 1:
        stack.emplace_back(tensor_at(ts, a.i));
        break;
      case 2: {
        // `Tensor?[]` (index's indices) and `Tensor[]` are different list types.
        const auto& ty = schema.arguments()[k].type();
        auto list = ty->cast<c10::ListType>();
        bool optional = list && list->getElementType()->kind() == c10::TypeKind::OptionalType;
        if (optional) {
          c10::List<std::optional<at::Tensor>> l;
          for (size_t j = 0; j < a.len; ++j) {
            if (a.ints[j] < 0) {
              l.push_back(std::nullopt);
            } else {
              l.push_back(tensor_at(ts, a.ints[j]));
            }
          }
          stack.emplace_back(std::move(l));
        } else {
          c10::List<at::Tensor> l;
          for (size_t j = 0; j < a.len; ++j) {
            TORCH_CHECK(a.ints[j] >= 0, "None in a list of tensors of ", schema.name());
            l.push_back(tensor_at(ts, a.ints[j]));
          }
          stack.emplace_back(std::move(l));
        }
        break;
      }
      case 3:
        stack.emplace_back(a.i != 0);
        break;
      case 4:
        stack.emplace_back(a.i);
        break;
      case 5:
        stack.emplace_back(a.d);
        break;
      case 6:
        stack.emplace_back(std::string(a.str, a.len));
        break;
      case 7:
        stack.emplace_back(c10::List<int64_t>(std::vector<int64_t>(a.ints, a.ints + a.len)));
        break;
      case 8:
        stack.emplace_back(static_cast<c10::ScalarType>(a.i));
        break;
      case 9:
      case 10:
      case 11: {
        // As PyTorch's argument parser makes a number into a tensor: 0-dim, on the CPU, marked
        // as a wrapped number (type promotion treats it as a number).
        at::Tensor t = a.kind == 9    ? at::scalar_tensor(a.i, at::kLong)
                       : a.kind == 10 ? at::scalar_tensor(a.d, at::kDouble)
                                      : at::scalar_tensor(a.i != 0, at::kBool);
        t.unsafeGetTensorImpl()->set_wrapped_number(true);
        stack.emplace_back(std::move(t));
        break;
      }
      default:
        TORCH_CHECK(false, "argument ", k, " of ", schema.name(), " has an unknown kind ", a.kind);
    }
  }
  return stack;
}

// The tensors a call returned, flattened (a tuple or a list of tensors is several).
std::vector<at::Tensor> results(const c10::OperatorHandle& op, torch::jit::Stack& stack) {
  std::vector<at::Tensor> out;
  auto push = [&](const c10::IValue& v) {
    if (v.isTensor()) {
      out.push_back(v.toTensor());
    } else if (v.isTensorList()) {
      for (const at::Tensor& t : v.toTensorVector()) {
        out.push_back(t);
      }
    } else {
      TORCH_CHECK(false, op.schema().name(), " returned a ", v.tagKind(),
                  ", an ATen call here returns tensors");
    }
  };
  for (const auto& v : stack) {
    if (v.isTuple()) {
      for (const auto& e : v.toTupleRef().elements()) {
        push(e);
      }
    } else {
      push(v);
    }
  }
  return out;
}

std::vector<at::Tensor> call_op(const c10::OperatorHandle& op, const ThunderAtenArg* args,
                                size_t nargs, const std::vector<at::Tensor>& ts) {
  torch::jit::Stack stack = make_stack(op, args, nargs, ts);
  op.callBoxed(&stack);
  return results(op, stack);
}

}  // namespace

extern "C" {

// Looks the ATen operator `name.overload` up in libtorch's dispatcher and checks that it takes
// `nargs` arguments: a handle for `thunder_aten_call` and `thunder_aten_vjp`, freed with
// `thunder_aten_free`.
char* thunder_aten_find(const char* name, const char* overload, size_t nargs, void** out) {
  return guarded([&] {
    *out = nullptr;
    auto op = std::make_unique<c10::OperatorHandle>(find_op(name, overload));
    const auto& schema = op->schema();
    TORCH_CHECK(schema.arguments().size() == nargs, schema.name(), " takes ",
                schema.arguments().size(), " arguments (", schema, "), the call gives ", nargs);
    *out = op.release();
  });
}

void thunder_aten_free(void* op) { delete static_cast<c10::OperatorHandle*>(op); }

// Calls the ATen operator `op` (from `thunder_aten_find`) with `args` over `tensors`, as PyTorch's dispatcher
// would for `torch.ops.aten.<name>.<overload>(...)`, autocast excluded (a trace states its dtypes).
// Writes at most `max_outs` results as new `at::Tensor*` to `outs` and their count to `*nouts`.
// A result that shares memory with an operand is copied: the trace's values never alias.
char* thunder_aten_call(const void* handle, const ThunderAtenArg* args, size_t nargs,
                        at::Tensor* const* tensors, size_t ntensors, at::Tensor** outs,
                        size_t max_outs, size_t* nouts) {
  return guarded([&] {
    *nouts = 0;
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
    const c10::OperatorHandle& op = *static_cast<const c10::OperatorHandle*>(handle);
    std::vector<at::Tensor> ts = list(tensors, ntensors);
    std::vector<at::Tensor> r = call_op(op, args, nargs, ts);
    TORCH_CHECK(r.size() <= max_outs, op.schema().name(), " returned ", r.size(),
                " tensors, the trace expects ", max_outs);
    for (at::Tensor& t : r) {
      for (const at::Tensor& x : ts) {
        if (t.defined() && x.defined() && t.is_alias_of(x)) {
          t = t.clone();
          break;
        }
      }
    }
    for (size_t i = 0; i < r.size(); ++i) {
      outs[i] = new at::Tensor(std::move(r[i]));
    }
    *nouts = r.size();
  });
}

// The gradients of the ATen call `op(args)` (`op` from `thunder_aten_find`) over `tensors` with respect to the
// tensors listed in `wrt`, given the cotangents `cts` of the outputs listed in `ct_index`:
// the call again, with autograd on, then `torch.autograd.grad`, so the derivative is ATen's own.
// A gradient autograd leaves undefined (no path) is zeros. Writes `nwrt` new tensors to `grads`.
char* thunder_aten_vjp(const void* handle, const ThunderAtenArg* args, size_t nargs,
                       at::Tensor* const* tensors, size_t ntensors, const int64_t* ct_index,
                       at::Tensor* const* cts, size_t ncts, const int64_t* wrt, size_t nwrt,
                       at::Tensor** grads) {
  return guarded([&] {
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
    at::AutoGradMode enable(true);
    const c10::OperatorHandle& op = *static_cast<const c10::OperatorHandle*>(handle);
    std::vector<at::Tensor> leaves;
    leaves.reserve(ntensors);
    for (size_t i = 0; i < ntensors; ++i) {
      leaves.push_back(tensors[i]->detach());
    }
    std::vector<at::Tensor> inputs;
    for (size_t k = 0; k < nwrt; ++k) {
      TORCH_CHECK(wrt[k] >= 0 && static_cast<size_t>(wrt[k]) < ntensors, "wrt names operand ",
                  wrt[k], " of ", ntensors);
      at::Tensor& l = leaves[static_cast<size_t>(wrt[k])];
      if (!l.requires_grad()) {
        l.requires_grad_(true);
      }
      inputs.push_back(l);
    }
    std::vector<at::Tensor> r = call_op(op, args, nargs, leaves);
    std::vector<at::Tensor> outputs, grad_outputs;
    for (size_t k = 0; k < ncts; ++k) {
      TORCH_CHECK(ct_index[k] >= 0 && static_cast<size_t>(ct_index[k]) < r.size(),
                  "a cotangent for output ", ct_index[k], " of ", r.size());
      const at::Tensor& o = r[static_cast<size_t>(ct_index[k])];
      if (o.defined() && o.requires_grad()) {
        outputs.push_back(o);
        grad_outputs.push_back(*cts[k]);
      }
    }
    std::vector<at::Tensor> g;
    if (!outputs.empty()) {
      g = torch::autograd::grad(outputs, inputs, grad_outputs, /*retain_graph=*/false,
                                /*create_graph=*/false, /*allow_unused=*/true);
    }
    for (size_t k = 0; k < nwrt; ++k) {
      at::Tensor gk = k < g.size() && g[k].defined() ? g[k] : at::zeros_like(inputs[k]);
      grads[k] = new at::Tensor(std::move(gk));
    }
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
