# Printed by thunder-rs (thunder-ir 0.1.0)
import thunder.core.prims as prims
import thunder.torch as ltorch
from thunder.core import dtypes

def lm_head_loss_grad(x, targets, ln_f_weight, lm_head_weight, ct_t35):
  # x: "cuda:0 bf16[2, 8, 16]"
  # targets: "cuda:0 i64[2, 8]"
  # ln_f_weight: "cuda:0 bf16[16] requires_grad"
  # lm_head_weight: "cuda:0 bf16[64, 16] requires_grad"
  # ct_t35: "cuda:0 bf16[]"
  t11 = ltorch.rms_norm(x, ln_f_weight, normalized_shape=[16], eps=1e-5)  # t11: "cuda:0 bf16[2, 8, 16] requires_grad"
    # t0 = prims.convert_element_type(x, dtype=dtypes.float32)
    # t1 = prims.mul(t0, t0)
    # t2 = prims.sum(t1, dims=[2])
    # t3 = prims.div(t2, 16.0)
    # t4 = prims.add(t3, 1e-5)
    # t5 = prims.rsqrt(t4)
    # t6 = prims.broadcast_in_dim(t5, shape=[2, 8, 16], broadcast_dimensions=[0, 1])
    # t7 = prims.mul(t0, t6)
    # t8 = prims.convert_element_type(ln_f_weight, dtype=dtypes.float32)
    # t9 = prims.broadcast_in_dim(t8, shape=[2, 8, 16], broadcast_dimensions=[2])
    # t10 = prims.mul(t7, t9)
    # t11 = prims.convert_element_type(t10, dtype=dtypes.bfloat16)
  t12 = prims.linear(t11, lm_head_weight, None)  # t12: "cuda:0 bf16[2, 8, 64] requires_grad"
  t13 = prims.reshape(t12, shape=[16, 64])  # t13: "cuda:0 bf16[16, 64] requires_grad"
  t14 = prims.reshape(targets, shape=[16])  # t14: "cuda:0 i64[16]"
  t35 = ltorch.cross_entropy(t13, t14, ignore_index=-100, reduction="mean", label_smoothing=0.0)  # t35: "cuda:0 bf16[] requires_grad"
    # t15 = prims.convert_element_type(t13, dtype=dtypes.float32)
    # t23 = ltorch.log_softmax(t15, dim=1, dtype=None)
      # t16 = prims.amax(t15, dims=[1])
      # t17 = prims.broadcast_in_dim(t16, shape=[16, 64], broadcast_dimensions=[0])
      # t18 = prims.sub(t15, t17)
      # t19 = prims.exp(t18)
      # t20 = prims.sum(t19, dims=[1])
      # t21 = prims.log(t20)
      # t22 = prims.broadcast_in_dim(t21, shape=[16, 64], broadcast_dimensions=[0])
      # t23 = prims.sub(t18, t22)
    # t24 = prims.broadcast_in_dim(t14, shape=[16, 1], broadcast_dimensions=[0])
    # t25 = prims.ne(t24, -100)
    # t26 = prims.where(t25, t24, 0)
    # t27 = prims.take_along_axis(t23, t26, dim=1)
    # t28 = prims.neg(t27)
    # t29 = prims.where(t25, t28, 0.0)
    # t30 = prims.reshape(t29, shape=[16])
    # t31 = prims.sum(t30, dims=[0])
    # t32 = prims.convert_element_type(t25, dtype=dtypes.float32)
    # t33 = prims.sum(t32, dims=[0, 1])
    # t34 = prims.div(t31, t33)
    # t35 = prims.convert_element_type(t34, dtype=dtypes.bfloat16)
  t65 = ltorch.cross_entropy_backward(ct_t35, t13, t14, ignore_index=-100, reduction="mean")  # t65: "cuda:0 bf16[16, 64] requires_grad"
    # t36 = prims.reshape(t13, shape=[16, 64])
    # t37 = prims.convert_element_type(t36, dtype=dtypes.float32)
    # t38 = prims.amax(t37, dims=[1])
    # t39 = prims.broadcast_in_dim(t38, shape=[16, 64], broadcast_dimensions=[0])
    # t40 = prims.sub(t37, t39)
    # t41 = prims.exp(t40)
    # t42 = prims.sum(t41, dims=[1])
    # t43 = prims.broadcast_in_dim(t42, shape=[16, 64], broadcast_dimensions=[0])
    # t44 = prims.div(t41, t43)
    # t45 = prims.reshape(t14, shape=[16])
    # t46 = prims.ne(t45, -100)
    # t47 = prims.convert_element_type(t46, dtype=dtypes.float32)
    # t48 = prims.convert_element_type(ct_t35, dtype=dtypes.float32)
    # t49 = prims.broadcast_in_dim(t48, shape=[16], broadcast_dimensions=[])
    # t50 = prims.mul(t49, t47)
    # t51 = prims.sum(t47, dims=[0])
    # t52 = prims.maximum(t51, 1.0)
    # t53 = prims.broadcast_in_dim(t52, shape=[16], broadcast_dimensions=[])
    # t54 = prims.div(t50, t53)
    # t55 = prims.iota(length=64, start=0, step=1, device="cuda:0", dtype=dtypes.int64)
    # t56 = prims.broadcast_in_dim(t55, shape=[16, 64], broadcast_dimensions=[1])
    # t57 = prims.broadcast_in_dim(t45, shape=[16, 64], broadcast_dimensions=[0])
    # t58 = prims.eq(t56, t57)
    # t59 = prims.convert_element_type(t58, dtype=dtypes.float32)
    # t60 = prims.broadcast_in_dim(t54, shape=[16, 64], broadcast_dimensions=[0])
    # t61 = prims.mul(t44, t60)
    # t62 = prims.mul(t59, t60)
    # t63 = prims.sub(t61, t62)
    # t64 = prims.reshape(t63, shape=[16, 64])
    # t65 = prims.convert_element_type(t64, dtype=dtypes.bfloat16)
  t66 = prims.reshape(t65, shape=[2, 8, 64])  # t66: "cuda:0 bf16[2, 8, 64] requires_grad"
  t67 = prims.reshape(t66, shape=[2, 8, 64])  # t67: "cuda:0 bf16[2, 8, 64] requires_grad"
  t68 = prims.matmul(t67, lm_head_weight)  # t68: "cuda:0 bf16[2, 8, 16] requires_grad"
  t69 = prims.reshape(t67, shape=[16, 64])  # t69: "cuda:0 bf16[16, 64] requires_grad"
  t70 = prims.reshape(t11, shape=[16, 16])  # t70: "cuda:0 bf16[16, 16] requires_grad"
  t71 = prims.transpose(t69, permutation=[1, 0])  # t71: "cuda:0 bf16[64, 16] requires_grad"
  t72 = prims.matmul(t71, t70)  # t72: "cuda:0 bf16[64, 16] requires_grad"
  t73 = prims.reshape(t72, shape=[64, 16])  # t73: "cuda:0 bf16[64, 16] requires_grad"
  t74 = prims.convert_element_type(x, dtype=dtypes.float32)  # t74: "cuda:0 f32[2, 8, 16]"
  t75 = prims.convert_element_type(t68, dtype=dtypes.float32)  # t75: "cuda:0 f32[2, 8, 16] requires_grad"
  t79 = prims.mul(t74, t74)  # t79: "cuda:0 f32[2, 8, 16]"
  t80 = prims.sum(t79, dims=[2])  # t80: "cuda:0 f32[2, 8]"
  t81 = prims.div(t80, 16.0)  # t81: "cuda:0 f32[2, 8]"
  t82 = prims.add(t81, 1e-5)  # t82: "cuda:0 f32[2, 8]"
  t83 = prims.rsqrt(t82)  # t83: "cuda:0 f32[2, 8]"
  t84 = prims.broadcast_in_dim(t83, shape=[2, 8, 16], broadcast_dimensions=[0, 1])  # t84: "cuda:0 f32[2, 8, 16]"
  t95 = prims.mul(t75, t74)  # t95: "cuda:0 f32[2, 8, 16] requires_grad"
  t96 = prims.mul(t95, t84)  # t96: "cuda:0 f32[2, 8, 16] requires_grad"
  t97 = prims.sum(t96, dims=[0, 1])  # t97: "cuda:0 f32[16] requires_grad"
  t98 = prims.convert_element_type(t97, dtype=dtypes.bfloat16)  # t98: "cuda:0 bf16[16] requires_grad"
  return (t35, t98, t73)
