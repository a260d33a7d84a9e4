# Printed by thunder-rs (thunder-ir 0.1.0)
import thunder.core.prims as prims
import thunder.torch as ltorch
from thunder.core import dtypes

def llama_block(x, cos, sin, norm_1_weight, norm_2_weight, attn_weight, attn_proj_weight, fc_1_weight, fc_2_weight, proj_weight):
  # x: "cpu f32[2, 8, 16]"
  # cos: "cpu f32[8, 4]"
  # sin: "cpu f32[8, 4]"
  # norm_1_weight: "cpu f32[16] requires_grad"
  # norm_2_weight: "cpu f32[16] requires_grad"
  # attn_weight: "cpu f32[32, 16] requires_grad"
  # attn_proj_weight: "cpu f32[16, 16] requires_grad"
  # fc_1_weight: "cpu f32[48, 16] requires_grad"
  # fc_2_weight: "cpu f32[48, 16] requires_grad"
  # proj_weight: "cpu f32[16, 48] requires_grad"
  t8 = ltorch.rms_norm(x, norm_1_weight, normalized_shape=[16], eps=1e-5)  # t8: "cpu f32[2, 8, 16] requires_grad"
    # t0 = prims.mul(x, x)
    # t1 = prims.sum(t0, dims=[2])
    # t2 = prims.div(t1, 16.0)
    # t3 = prims.add(t2, 1e-5)
    # t4 = prims.rsqrt(t3)
    # t5 = prims.broadcast_in_dim(t4, shape=[2, 8, 16], broadcast_dimensions=[0, 1])
    # t6 = prims.mul(x, t5)
    # t7 = prims.broadcast_in_dim(norm_1_weight, shape=[2, 8, 16], broadcast_dimensions=[2])
    # t8 = prims.mul(t6, t7)
  t9 = ltorch.linear(t8, attn_weight, None)  # t9: "cpu f32[2, 8, 32] requires_grad"
    # t9 = prims.linear(t8, attn_weight, None)
  t10, t11, t12 = ltorch.split(t9, split_size_or_sections=[16, 8, 8], dim=-1)  # t10: "cpu f32[2, 8, 16] requires_grad", t11: "cpu f32[2, 8, 8] requires_grad", t12: "cpu f32[2, 8, 8] requires_grad"
    # t10 = prims.slice(t9, start_indices=[0, 0, 0], end_indices=[2, 8, 16], strides=[1, 1, 1])
    # t11 = prims.slice(t9, start_indices=[0, 0, 16], end_indices=[2, 8, 24], strides=[1, 1, 1])
    # t12 = prims.slice(t9, start_indices=[0, 0, 24], end_indices=[2, 8, 32], strides=[1, 1, 1])
  t13 = ltorch.reshape(t10, shape=[2, 8, 4, 4])  # t13: "cpu f32[2, 8, 4, 4] requires_grad"
    # t13 = prims.reshape(t10, shape=[2, 8, 4, 4])
  t14 = ltorch.transpose(t13, dim0=1, dim1=2)  # t14: "cpu f32[2, 4, 8, 4] requires_grad"
    # t14 = prims.transpose(t13, permutation=[0, 2, 1, 3])
  t15 = ltorch.reshape(t11, shape=[2, 8, 2, 4])  # t15: "cpu f32[2, 8, 2, 4] requires_grad"
    # t15 = prims.reshape(t11, shape=[2, 8, 2, 4])
  t16 = ltorch.transpose(t15, dim0=1, dim1=2)  # t16: "cpu f32[2, 2, 8, 4] requires_grad"
    # t16 = prims.transpose(t15, permutation=[0, 2, 1, 3])
  t17 = ltorch.reshape(t12, shape=[2, 8, 2, 4])  # t17: "cpu f32[2, 8, 2, 4] requires_grad"
    # t17 = prims.reshape(t12, shape=[2, 8, 2, 4])
  t18 = ltorch.transpose(t17, dim0=1, dim1=2)  # t18: "cpu f32[2, 2, 8, 4] requires_grad"
    # t18 = prims.transpose(t17, permutation=[0, 2, 1, 3])
  t19 = ltorch.narrow(t14, dim=-1, start=0, length=2)  # t19: "cpu f32[2, 4, 8, 2] requires_grad"
    # t19 = prims.slice(t14, start_indices=[0, 0, 0, 0], end_indices=[2, 4, 8, 2], strides=[1, 1, 1, 1])
  t20 = ltorch.narrow(t14, dim=-1, start=2, length=2)  # t20: "cpu f32[2, 4, 8, 2] requires_grad"
    # t20 = prims.slice(t14, start_indices=[0, 0, 0, 2], end_indices=[2, 4, 8, 4], strides=[1, 1, 1, 1])
  t21 = ltorch.neg(t20)  # t21: "cpu f32[2, 4, 8, 2] requires_grad"
    # t21 = prims.neg(t20)
  t22 = ltorch.cat([t21, t19], dim=-1)  # t22: "cpu f32[2, 4, 8, 4] requires_grad"
    # t22 = prims.cat([t21, t19], dim=-1)
  t24 = ltorch.mul(t14, cos)  # t24: "cpu f32[2, 4, 8, 4] requires_grad"
    # t23 = prims.broadcast_in_dim(cos, shape=[2, 4, 8, 4], broadcast_dimensions=[2, 3])
    # t24 = prims.mul(t14, t23)
  t26 = ltorch.mul(t22, sin)  # t26: "cpu f32[2, 4, 8, 4] requires_grad"
    # t25 = prims.broadcast_in_dim(sin, shape=[2, 4, 8, 4], broadcast_dimensions=[2, 3])
    # t26 = prims.mul(t22, t25)
  t27 = ltorch.add(t24, t26, alpha=None)  # t27: "cpu f32[2, 4, 8, 4] requires_grad"
    # t27 = prims.add(t24, t26)
  t28 = ltorch.narrow(t16, dim=-1, start=0, length=2)  # t28: "cpu f32[2, 2, 8, 2] requires_grad"
    # t28 = prims.slice(t16, start_indices=[0, 0, 0, 0], end_indices=[2, 2, 8, 2], strides=[1, 1, 1, 1])
  t29 = ltorch.narrow(t16, dim=-1, start=2, length=2)  # t29: "cpu f32[2, 2, 8, 2] requires_grad"
    # t29 = prims.slice(t16, start_indices=[0, 0, 0, 2], end_indices=[2, 2, 8, 4], strides=[1, 1, 1, 1])
  t30 = ltorch.neg(t29)  # t30: "cpu f32[2, 2, 8, 2] requires_grad"
    # t30 = prims.neg(t29)
  t31 = ltorch.cat([t30, t28], dim=-1)  # t31: "cpu f32[2, 2, 8, 4] requires_grad"
    # t31 = prims.cat([t30, t28], dim=-1)
  t33 = ltorch.mul(t16, cos)  # t33: "cpu f32[2, 2, 8, 4] requires_grad"
    # t32 = prims.broadcast_in_dim(cos, shape=[2, 2, 8, 4], broadcast_dimensions=[2, 3])
    # t33 = prims.mul(t16, t32)
  t35 = ltorch.mul(t31, sin)  # t35: "cpu f32[2, 2, 8, 4] requires_grad"
    # t34 = prims.broadcast_in_dim(sin, shape=[2, 2, 8, 4], broadcast_dimensions=[2, 3])
    # t35 = prims.mul(t31, t34)
  t36 = ltorch.add(t33, t35, alpha=None)  # t36: "cpu f32[2, 2, 8, 4] requires_grad"
    # t36 = prims.add(t33, t35)
  t58 = ltorch.scaled_dot_product_attention(t27, t36, t18, None, dropout_p=0.0, is_causal=True, scale=None, enable_gqa=True)  # t58: "cpu f32[2, 4, 8, 4] requires_grad"
    # t37 = prims.broadcast_in_dim(t36, shape=[2, 2, 2, 8, 4], broadcast_dimensions=[0, 1, 3, 4])
    # t38 = prims.reshape(t37, shape=[2, 4, 8, 4])
    # t39 = prims.broadcast_in_dim(t18, shape=[2, 2, 2, 8, 4], broadcast_dimensions=[0, 1, 3, 4])
    # t40 = prims.reshape(t39, shape=[2, 4, 8, 4])
    # t41 = prims.transpose(t38, permutation=[0, 1, 3, 2])
    # t42 = prims.matmul(t27, t41)
    # t43 = prims.mul(t42, 0.5)
    # t44 = prims.iota(length=8, start=0, step=1, device="cpu", dtype=dtypes.int64)
    # t45 = prims.iota(length=8, start=0, step=1, device="cpu", dtype=dtypes.int64)
    # t46 = prims.broadcast_in_dim(t44, shape=[8, 8], broadcast_dimensions=[0])
    # t47 = prims.broadcast_in_dim(t45, shape=[8, 8], broadcast_dimensions=[1])
    # t48 = prims.ge(t46, t47)
    # t49 = prims.broadcast_in_dim(t48, shape=[2, 4, 8, 8], broadcast_dimensions=[2, 3])
    # t50 = prims.where(t49, t43, -float('inf'))
    # t57 = ltorch.softmax(t50, dim=-1, dtype=None)
      # t51 = prims.amax(t50, dims=[3])
      # t52 = prims.broadcast_in_dim(t51, shape=[2, 4, 8, 8], broadcast_dimensions=[0, 1, 2])
      # t53 = prims.sub(t50, t52)
      # t54 = prims.exp(t53)
      # t55 = prims.sum(t54, dims=[3])
      # t56 = prims.broadcast_in_dim(t55, shape=[2, 4, 8, 8], broadcast_dimensions=[0, 1, 2])
      # t57 = prims.div(t54, t56)
    # t58 = prims.matmul(t57, t40)
  t59 = ltorch.transpose(t58, dim0=1, dim1=2)  # t59: "cpu f32[2, 8, 4, 4] requires_grad"
    # t59 = prims.transpose(t58, permutation=[0, 2, 1, 3])
  t60 = ltorch.reshape(t59, shape=[2, 8, 16])  # t60: "cpu f32[2, 8, 16] requires_grad"
    # t60 = prims.reshape(t59, shape=[2, 8, 16])
  t61 = ltorch.linear(t60, attn_proj_weight, None)  # t61: "cpu f32[2, 8, 16] requires_grad"
    # t61 = prims.linear(t60, attn_proj_weight, None)
  t62 = ltorch.add(x, t61, alpha=None)  # t62: "cpu f32[2, 8, 16] requires_grad"
    # t62 = prims.add(x, t61)
  t71 = ltorch.rms_norm(t62, norm_2_weight, normalized_shape=[16], eps=1e-5)  # t71: "cpu f32[2, 8, 16] requires_grad"
    # t63 = prims.mul(t62, t62)
    # t64 = prims.sum(t63, dims=[2])
    # t65 = prims.div(t64, 16.0)
    # t66 = prims.add(t65, 1e-5)
    # t67 = prims.rsqrt(t66)
    # t68 = prims.broadcast_in_dim(t67, shape=[2, 8, 16], broadcast_dimensions=[0, 1])
    # t69 = prims.mul(t62, t68)
    # t70 = prims.broadcast_in_dim(norm_2_weight, shape=[2, 8, 16], broadcast_dimensions=[2])
    # t71 = prims.mul(t69, t70)
  t72 = ltorch.linear(t71, fc_1_weight, None)  # t72: "cpu f32[2, 8, 48] requires_grad"
    # t72 = prims.linear(t71, fc_1_weight, None)
  t73 = ltorch.linear(t71, fc_2_weight, None)  # t73: "cpu f32[2, 8, 48] requires_grad"
    # t73 = prims.linear(t71, fc_2_weight, None)
  t78 = ltorch.silu(t72)  # t78: "cpu f32[2, 8, 48] requires_grad"
    # t74 = prims.neg(t72)
    # t75 = prims.exp(t74)
    # t76 = prims.add(t75, 1.0)
    # t77 = prims.reciprocal(t76)
    # t78 = prims.mul(t72, t77)
  t79 = ltorch.mul(t78, t73)  # t79: "cpu f32[2, 8, 48] requires_grad"
    # t79 = prims.mul(t78, t73)
  t80 = ltorch.linear(t79, proj_weight, None)  # t80: "cpu f32[2, 8, 16] requires_grad"
    # t80 = prims.linear(t79, proj_weight, None)
  t81 = ltorch.add(t62, t80, alpha=None)  # t81: "cpu f32[2, 8, 16] requires_grad"
    # t81 = prims.add(t62, t80)
  return t81
