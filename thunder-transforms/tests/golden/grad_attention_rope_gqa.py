# Printed by thunder-rs (thunder-ir 0.1.0)
import thunder.core.prims as prims
import thunder.torch as ltorch
from thunder.core import dtypes

def llama_attention_grad(x, cos, sin, attn_weight, attn_proj_weight, ct_t52):
  # x: "cpu f32[2, 8, 16]"
  # cos: "cpu f32[8, 4]"
  # sin: "cpu f32[8, 4]"
  # attn_weight: "cpu f32[32, 16] requires_grad"
  # attn_proj_weight: "cpu f32[16, 16] requires_grad"
  # ct_t52: "cpu f32[2, 8, 16]"
  t0 = prims.linear(x, attn_weight, None)  # t0: "cpu f32[2, 8, 32] requires_grad"
  t1 = prims.slice(t0, start_indices=[0, 0, 0], end_indices=[2, 8, 16], strides=[1, 1, 1])  # t1: "cpu f32[2, 8, 16] requires_grad"
  t2 = prims.slice(t0, start_indices=[0, 0, 16], end_indices=[2, 8, 24], strides=[1, 1, 1])  # t2: "cpu f32[2, 8, 8] requires_grad"
  t3 = prims.slice(t0, start_indices=[0, 0, 24], end_indices=[2, 8, 32], strides=[1, 1, 1])  # t3: "cpu f32[2, 8, 8] requires_grad"
  t4 = prims.reshape(t1, shape=[2, 8, 4, 4])  # t4: "cpu f32[2, 8, 4, 4] requires_grad"
  t5 = prims.transpose(t4, permutation=[0, 2, 1, 3])  # t5: "cpu f32[2, 4, 8, 4] requires_grad"
  t6 = prims.reshape(t2, shape=[2, 8, 2, 4])  # t6: "cpu f32[2, 8, 2, 4] requires_grad"
  t7 = prims.transpose(t6, permutation=[0, 2, 1, 3])  # t7: "cpu f32[2, 2, 8, 4] requires_grad"
  t8 = prims.reshape(t3, shape=[2, 8, 2, 4])  # t8: "cpu f32[2, 8, 2, 4] requires_grad"
  t9 = prims.transpose(t8, permutation=[0, 2, 1, 3])  # t9: "cpu f32[2, 2, 8, 4] requires_grad"
  t10 = prims.slice(t5, start_indices=[0, 0, 0, 0], end_indices=[2, 4, 8, 2], strides=[1, 1, 1, 1])  # t10: "cpu f32[2, 4, 8, 2] requires_grad"
  t11 = prims.slice(t5, start_indices=[0, 0, 0, 2], end_indices=[2, 4, 8, 4], strides=[1, 1, 1, 1])  # t11: "cpu f32[2, 4, 8, 2] requires_grad"
  t12 = prims.neg(t11)  # t12: "cpu f32[2, 4, 8, 2] requires_grad"
  t13 = prims.cat([t12, t10], dim=-1)  # t13: "cpu f32[2, 4, 8, 4] requires_grad"
  t14 = prims.broadcast_in_dim(cos, shape=[2, 4, 8, 4], broadcast_dimensions=[2, 3])  # t14: "cpu f32[2, 4, 8, 4]"
  t15 = prims.mul(t5, t14)  # t15: "cpu f32[2, 4, 8, 4] requires_grad"
  t16 = prims.broadcast_in_dim(sin, shape=[2, 4, 8, 4], broadcast_dimensions=[2, 3])  # t16: "cpu f32[2, 4, 8, 4]"
  t17 = prims.mul(t13, t16)  # t17: "cpu f32[2, 4, 8, 4] requires_grad"
  t18 = prims.add(t15, t17)  # t18: "cpu f32[2, 4, 8, 4] requires_grad"
  t19 = prims.slice(t7, start_indices=[0, 0, 0, 0], end_indices=[2, 2, 8, 2], strides=[1, 1, 1, 1])  # t19: "cpu f32[2, 2, 8, 2] requires_grad"
  t20 = prims.slice(t7, start_indices=[0, 0, 0, 2], end_indices=[2, 2, 8, 4], strides=[1, 1, 1, 1])  # t20: "cpu f32[2, 2, 8, 2] requires_grad"
  t21 = prims.neg(t20)  # t21: "cpu f32[2, 2, 8, 2] requires_grad"
  t22 = prims.cat([t21, t19], dim=-1)  # t22: "cpu f32[2, 2, 8, 4] requires_grad"
  t23 = prims.broadcast_in_dim(cos, shape=[2, 2, 8, 4], broadcast_dimensions=[2, 3])  # t23: "cpu f32[2, 2, 8, 4]"
  t24 = prims.mul(t7, t23)  # t24: "cpu f32[2, 2, 8, 4] requires_grad"
  t25 = prims.broadcast_in_dim(sin, shape=[2, 2, 8, 4], broadcast_dimensions=[2, 3])  # t25: "cpu f32[2, 2, 8, 4]"
  t26 = prims.mul(t22, t25)  # t26: "cpu f32[2, 2, 8, 4] requires_grad"
  t27 = prims.add(t24, t26)  # t27: "cpu f32[2, 2, 8, 4] requires_grad"
  t49 = ltorch.scaled_dot_product_attention(t18, t27, t9, None, dropout_p=0.0, is_causal=True, scale=None, enable_gqa=True)  # t49: "cpu f32[2, 4, 8, 4] requires_grad"
    # t28 = prims.broadcast_in_dim(t27, shape=[2, 2, 2, 8, 4], broadcast_dimensions=[0, 1, 3, 4])
    # t29 = prims.reshape(t28, shape=[2, 4, 8, 4])
    # t30 = prims.broadcast_in_dim(t9, shape=[2, 2, 2, 8, 4], broadcast_dimensions=[0, 1, 3, 4])
    # t31 = prims.reshape(t30, shape=[2, 4, 8, 4])
    # t32 = prims.transpose(t29, permutation=[0, 1, 3, 2])
    # t33 = prims.matmul(t18, t32)
    # t34 = prims.mul(t33, 0.5)
    # t35 = prims.iota(length=8, start=0, step=1, device="cpu", dtype=dtypes.int64)
    # t36 = prims.iota(length=8, start=0, step=1, device="cpu", dtype=dtypes.int64)
    # t37 = prims.broadcast_in_dim(t35, shape=[8, 8], broadcast_dimensions=[0])
    # t38 = prims.broadcast_in_dim(t36, shape=[8, 8], broadcast_dimensions=[1])
    # t39 = prims.ge(t37, t38)
    # t40 = prims.broadcast_in_dim(t39, shape=[2, 4, 8, 8], broadcast_dimensions=[2, 3])
    # t41 = prims.where(t40, t34, -float('inf'))
    # t48 = ltorch.softmax(t41, dim=-1, dtype=None)
      # t42 = prims.amax(t41, dims=[3])
      # t43 = prims.broadcast_in_dim(t42, shape=[2, 4, 8, 8], broadcast_dimensions=[0, 1, 2])
      # t44 = prims.sub(t41, t43)
      # t45 = prims.exp(t44)
      # t46 = prims.sum(t45, dims=[3])
      # t47 = prims.broadcast_in_dim(t46, shape=[2, 4, 8, 8], broadcast_dimensions=[0, 1, 2])
      # t48 = prims.div(t45, t47)
    # t49 = prims.matmul(t48, t31)
  t50 = prims.transpose(t49, permutation=[0, 2, 1, 3])  # t50: "cpu f32[2, 8, 4, 4] requires_grad"
  t51 = prims.reshape(t50, shape=[2, 8, 16])  # t51: "cpu f32[2, 8, 16] requires_grad"
  t52 = prims.linear(t51, attn_proj_weight, None)  # t52: "cpu f32[2, 8, 16] requires_grad"
  t53 = prims.reshape(ct_t52, shape=[2, 8, 16])  # t53: "cpu f32[2, 8, 16]"
  t54 = prims.matmul(t53, attn_proj_weight)  # t54: "cpu f32[2, 8, 16] requires_grad"
  t55 = prims.reshape(t53, shape=[16, 16])  # t55: "cpu f32[16, 16]"
  t56 = prims.reshape(t51, shape=[16, 16])  # t56: "cpu f32[16, 16] requires_grad"
  t57 = prims.transpose(t55, permutation=[1, 0])  # t57: "cpu f32[16, 16]"
  t58 = prims.matmul(t57, t56)  # t58: "cpu f32[16, 16] requires_grad"
  t59 = prims.reshape(t58, shape=[16, 16])  # t59: "cpu f32[16, 16] requires_grad"
  t60 = prims.reshape(t54, shape=[2, 8, 4, 4])  # t60: "cpu f32[2, 8, 4, 4] requires_grad"
  t61 = prims.transpose(t60, permutation=[0, 2, 1, 3])  # t61: "cpu f32[2, 4, 8, 4] requires_grad"
  t93, t98, t100 = ltorch.scaled_dot_product_attention_backward(t61, t18, t27, t9, None, is_causal=True, scale=None, enable_gqa=True)  # t93: "cpu f32[2, 4, 8, 4] requires_grad", t98: "cpu f32[2, 2, 8, 4] requires_grad", t100: "cpu f32[2, 2, 8, 4] requires_grad"
    # t62 = prims.broadcast_in_dim(t27, shape=[2, 2, 2, 8, 4], broadcast_dimensions=[0, 1, 3, 4])
    # t63 = prims.reshape(t62, shape=[2, 4, 8, 4])
    # t64 = prims.broadcast_in_dim(t9, shape=[2, 2, 2, 8, 4], broadcast_dimensions=[0, 1, 3, 4])
    # t65 = prims.reshape(t64, shape=[2, 4, 8, 4])
    # t66 = prims.transpose(t63, permutation=[0, 1, 3, 2])
    # t67 = prims.matmul(t18, t66)
    # t68 = prims.mul(t67, 0.5)
    # t69 = prims.iota(length=8, start=0, step=1, device="cpu", dtype=dtypes.int64)
    # t70 = prims.iota(length=8, start=0, step=1, device="cpu", dtype=dtypes.int64)
    # t71 = prims.broadcast_in_dim(t69, shape=[8, 8], broadcast_dimensions=[0])
    # t72 = prims.broadcast_in_dim(t70, shape=[8, 8], broadcast_dimensions=[1])
    # t73 = prims.ge(t71, t72)
    # t74 = prims.broadcast_in_dim(t73, shape=[2, 4, 8, 8], broadcast_dimensions=[2, 3])
    # t75 = prims.where(t74, t68, -float('inf'))
    # t82 = ltorch.softmax(t75, dim=-1, dtype=None)
      # t76 = prims.amax(t75, dims=[3])
      # t77 = prims.broadcast_in_dim(t76, shape=[2, 4, 8, 8], broadcast_dimensions=[0, 1, 2])
      # t78 = prims.sub(t75, t77)
      # t79 = prims.exp(t78)
      # t80 = prims.sum(t79, dims=[3])
      # t81 = prims.broadcast_in_dim(t80, shape=[2, 4, 8, 8], broadcast_dimensions=[0, 1, 2])
      # t82 = prims.div(t79, t81)
    # t83 = prims.transpose(t82, permutation=[0, 1, 3, 2])
    # t84 = prims.matmul(t83, t61)
    # t85 = prims.transpose(t65, permutation=[0, 1, 3, 2])
    # t86 = prims.matmul(t61, t85)
    # t87 = prims.mul(t82, t86)
    # t88 = prims.sum(t87, dims=[3])
    # t89 = prims.broadcast_in_dim(t88, shape=[2, 4, 8, 8], broadcast_dimensions=[0, 1, 2])
    # t90 = prims.sub(t86, t89)
    # t91 = prims.mul(t82, t90)
    # t92 = prims.matmul(t91, t63)
    # t93 = prims.mul(t92, 0.5)
    # t94 = prims.transpose(t91, permutation=[0, 1, 3, 2])
    # t95 = prims.matmul(t94, t18)
    # t96 = prims.mul(t95, 0.5)
    # t97 = prims.reshape(t96, shape=[2, 2, 2, 8, 4])
    # t98 = prims.sum(t97, dims=[2])
    # t99 = prims.reshape(t84, shape=[2, 2, 2, 8, 4])
    # t100 = prims.sum(t99, dims=[2])
  t101 = prims.mul(t98, t25)  # t101: "cpu f32[2, 2, 8, 4] requires_grad"
  t103 = prims.mul(t98, t23)  # t103: "cpu f32[2, 2, 8, 4] requires_grad"
  t105 = prims.slice(t101, start_indices=[0, 0, 0, 0], end_indices=[2, 2, 8, 2], strides=[1, 1, 1, 1])  # t105: "cpu f32[2, 2, 8, 2] requires_grad"
  t106 = prims.slice(t101, start_indices=[0, 0, 0, 2], end_indices=[2, 2, 8, 4], strides=[1, 1, 1, 1])  # t106: "cpu f32[2, 2, 8, 2] requires_grad"
  t107 = prims.neg(t105)  # t107: "cpu f32[2, 2, 8, 2] requires_grad"
  t108 = prims.pad(t107, padding_value=0.0, padding_config=[[0, 0, 0], [0, 0, 0], [0, 0, 0], [2, 0, 0]])  # t108: "cpu f32[2, 2, 8, 4] requires_grad"
  t109 = prims.add(t103, t108)  # t109: "cpu f32[2, 2, 8, 4] requires_grad"
  t110 = prims.pad(t106, padding_value=0.0, padding_config=[[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 2, 0]])  # t110: "cpu f32[2, 2, 8, 4] requires_grad"
  t111 = prims.add(t109, t110)  # t111: "cpu f32[2, 2, 8, 4] requires_grad"
  t112 = prims.mul(t93, t16)  # t112: "cpu f32[2, 4, 8, 4] requires_grad"
  t114 = prims.mul(t93, t14)  # t114: "cpu f32[2, 4, 8, 4] requires_grad"
  t116 = prims.slice(t112, start_indices=[0, 0, 0, 0], end_indices=[2, 4, 8, 2], strides=[1, 1, 1, 1])  # t116: "cpu f32[2, 4, 8, 2] requires_grad"
  t117 = prims.slice(t112, start_indices=[0, 0, 0, 2], end_indices=[2, 4, 8, 4], strides=[1, 1, 1, 1])  # t117: "cpu f32[2, 4, 8, 2] requires_grad"
  t118 = prims.neg(t116)  # t118: "cpu f32[2, 4, 8, 2] requires_grad"
  t119 = prims.pad(t118, padding_value=0.0, padding_config=[[0, 0, 0], [0, 0, 0], [0, 0, 0], [2, 0, 0]])  # t119: "cpu f32[2, 4, 8, 4] requires_grad"
  t120 = prims.add(t114, t119)  # t120: "cpu f32[2, 4, 8, 4] requires_grad"
  t121 = prims.pad(t117, padding_value=0.0, padding_config=[[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 2, 0]])  # t121: "cpu f32[2, 4, 8, 4] requires_grad"
  t122 = prims.add(t120, t121)  # t122: "cpu f32[2, 4, 8, 4] requires_grad"
  t123 = prims.transpose(t100, permutation=[0, 2, 1, 3])  # t123: "cpu f32[2, 8, 2, 4] requires_grad"
  t124 = prims.reshape(t123, shape=[2, 8, 8])  # t124: "cpu f32[2, 8, 8] requires_grad"
  t125 = prims.transpose(t111, permutation=[0, 2, 1, 3])  # t125: "cpu f32[2, 8, 2, 4] requires_grad"
  t126 = prims.reshape(t125, shape=[2, 8, 8])  # t126: "cpu f32[2, 8, 8] requires_grad"
  t127 = prims.transpose(t122, permutation=[0, 2, 1, 3])  # t127: "cpu f32[2, 8, 4, 4] requires_grad"
  t128 = prims.reshape(t127, shape=[2, 8, 16])  # t128: "cpu f32[2, 8, 16] requires_grad"
  t129 = prims.pad(t124, padding_value=0.0, padding_config=[[0, 0, 0], [0, 0, 0], [24, 0, 0]])  # t129: "cpu f32[2, 8, 32] requires_grad"
  t130 = prims.pad(t126, padding_value=0.0, padding_config=[[0, 0, 0], [0, 0, 0], [16, 8, 0]])  # t130: "cpu f32[2, 8, 32] requires_grad"
  t131 = prims.add(t129, t130)  # t131: "cpu f32[2, 8, 32] requires_grad"
  t132 = prims.pad(t128, padding_value=0.0, padding_config=[[0, 0, 0], [0, 0, 0], [0, 16, 0]])  # t132: "cpu f32[2, 8, 32] requires_grad"
  t133 = prims.add(t131, t132)  # t133: "cpu f32[2, 8, 32] requires_grad"
  t134 = prims.reshape(t133, shape=[2, 8, 32])  # t134: "cpu f32[2, 8, 32] requires_grad"
  t136 = prims.reshape(t134, shape=[16, 32])  # t136: "cpu f32[16, 32] requires_grad"
  t137 = prims.reshape(x, shape=[16, 16])  # t137: "cpu f32[16, 16]"
  t138 = prims.transpose(t136, permutation=[1, 0])  # t138: "cpu f32[32, 16] requires_grad"
  t139 = prims.matmul(t138, t137)  # t139: "cpu f32[32, 16] requires_grad"
  t140 = prims.reshape(t139, shape=[32, 16])  # t140: "cpu f32[32, 16] requires_grad"
  return (t52, t140, t59)
