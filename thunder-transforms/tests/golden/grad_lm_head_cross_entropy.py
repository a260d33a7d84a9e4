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
  t36 = prims.convert_element_type(t13, dtype=dtypes.float32)  # t36: "cuda:0 f32[16, 64] requires_grad"
  t37 = prims.amax(t36, dims=[1])  # t37: "cuda:0 f32[16] requires_grad"
  t38 = prims.broadcast_in_dim(t37, shape=[16, 64], broadcast_dimensions=[0])  # t38: "cuda:0 f32[16, 64] requires_grad"
  t39 = prims.sub(t36, t38)  # t39: "cuda:0 f32[16, 64] requires_grad"
  t40 = prims.exp(t39)  # t40: "cuda:0 f32[16, 64] requires_grad"
  t41 = prims.sum(t40, dims=[1])  # t41: "cuda:0 f32[16] requires_grad"
  t42 = prims.broadcast_in_dim(t41, shape=[16, 64], broadcast_dimensions=[0])  # t42: "cuda:0 f32[16, 64] requires_grad"
  t43 = prims.div(t40, t42)  # t43: "cuda:0 f32[16, 64] requires_grad"
  t44 = prims.ne(t14, -100)  # t44: "cuda:0 b8[16]"
  t45 = prims.convert_element_type(t44, dtype=dtypes.float32)  # t45: "cuda:0 f32[16]"
  t46 = prims.convert_element_type(ct_t35, dtype=dtypes.float32)  # t46: "cuda:0 f32[]"
  t47 = prims.broadcast_in_dim(t46, shape=[16], broadcast_dimensions=[])  # t47: "cuda:0 f32[16]"
  t48 = prims.mul(t47, t45)  # t48: "cuda:0 f32[16]"
  t49 = prims.sum(t45, dims=[0])  # t49: "cuda:0 f32[]"
  t50 = prims.broadcast_in_dim(t49, shape=[16], broadcast_dimensions=[])  # t50: "cuda:0 f32[16]"
  t51 = prims.div(t48, t50)  # t51: "cuda:0 f32[16]"
  t52 = prims.iota(length=64, start=0, step=1, device="cuda:0", dtype=dtypes.int64)  # t52: "cuda:0 i64[64]"
  t53 = prims.broadcast_in_dim(t52, shape=[16, 64], broadcast_dimensions=[1])  # t53: "cuda:0 i64[16, 64]"
  t54 = prims.broadcast_in_dim(t14, shape=[16, 64], broadcast_dimensions=[0])  # t54: "cuda:0 i64[16, 64]"
  t55 = prims.eq(t53, t54)  # t55: "cuda:0 b8[16, 64]"
  t56 = prims.convert_element_type(t55, dtype=dtypes.float32)  # t56: "cuda:0 f32[16, 64]"
  t57 = prims.broadcast_in_dim(t51, shape=[16, 64], broadcast_dimensions=[0])  # t57: "cuda:0 f32[16, 64]"
  t58 = prims.mul(t43, t57)  # t58: "cuda:0 f32[16, 64] requires_grad"
  t59 = prims.mul(t56, t57)  # t59: "cuda:0 f32[16, 64]"
  t60 = prims.sub(t58, t59)  # t60: "cuda:0 f32[16, 64] requires_grad"
  t61 = prims.convert_element_type(t60, dtype=dtypes.bfloat16)  # t61: "cuda:0 bf16[16, 64] requires_grad"
  t62 = prims.reshape(t61, shape=[2, 8, 64])  # t62: "cuda:0 bf16[2, 8, 64] requires_grad"
  t63 = prims.reshape(t62, shape=[2, 8, 64])  # t63: "cuda:0 bf16[2, 8, 64] requires_grad"
  t64 = prims.matmul(t63, lm_head_weight)  # t64: "cuda:0 bf16[2, 8, 16] requires_grad"
  t65 = prims.reshape(t63, shape=[16, 64])  # t65: "cuda:0 bf16[16, 64] requires_grad"
  t66 = prims.reshape(t11, shape=[16, 16])  # t66: "cuda:0 bf16[16, 16] requires_grad"
  t67 = prims.transpose(t65, permutation=[1, 0])  # t67: "cuda:0 bf16[64, 16] requires_grad"
  t68 = prims.matmul(t67, t66)  # t68: "cuda:0 bf16[64, 16] requires_grad"
  t69 = prims.reshape(t68, shape=[64, 16])  # t69: "cuda:0 bf16[64, 16] requires_grad"
  t70 = prims.convert_element_type(x, dtype=dtypes.float32)  # t70: "cuda:0 f32[2, 8, 16]"
  t71 = prims.convert_element_type(t64, dtype=dtypes.float32)  # t71: "cuda:0 f32[2, 8, 16] requires_grad"
  t75 = prims.mul(t70, t70)  # t75: "cuda:0 f32[2, 8, 16]"
  t76 = prims.sum(t75, dims=[2])  # t76: "cuda:0 f32[2, 8]"
  t77 = prims.div(t76, 16.0)  # t77: "cuda:0 f32[2, 8]"
  t78 = prims.add(t77, 1e-5)  # t78: "cuda:0 f32[2, 8]"
  t79 = prims.rsqrt(t78)  # t79: "cuda:0 f32[2, 8]"
  t80 = prims.broadcast_in_dim(t79, shape=[2, 8, 16], broadcast_dimensions=[0, 1])  # t80: "cuda:0 f32[2, 8, 16]"
  t91 = prims.mul(t71, t70)  # t91: "cuda:0 f32[2, 8, 16] requires_grad"
  t92 = prims.mul(t91, t80)  # t92: "cuda:0 f32[2, 8, 16] requires_grad"
  t93 = prims.sum(t92, dims=[0, 1])  # t93: "cuda:0 f32[16] requires_grad"
  t94 = prims.convert_element_type(t93, dtype=dtypes.bfloat16)  # t94: "cuda:0 bf16[16] requires_grad"
  return (t35, t94, t69)
