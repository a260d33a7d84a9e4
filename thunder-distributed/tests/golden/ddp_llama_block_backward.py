# Printed by thunder-rs (thunder-ir 0.1.0)
import thunder.core.prims as prims
import thunder.torch as ltorch
from thunder.core import dtypes
import thunder.distributed.prims as dist

def llama_block_backward_ddp(proj_weight, t72, t73, fc_2_weight, t62, norm_2_weight, fc_1_weight, attn_proj_weight, t138, t27, t36, t18, sin, cos, attn_weight, x, norm_1_weight, ct_t81):
  # proj_weight: "cpu f32[16, 48] requires_grad"
  # t72: "cpu f32[2, 8, 48] requires_grad"
  # t73: "cpu f32[2, 8, 48] requires_grad"
  # fc_2_weight: "cpu f32[48, 16] requires_grad"
  # t62: "cpu f32[2, 8, 16] requires_grad"
  # norm_2_weight: "cpu f32[16] requires_grad"
  # fc_1_weight: "cpu f32[48, 16] requires_grad"
  # attn_proj_weight: "cpu f32[16, 16] requires_grad"
  # t138: "cpu f32[16, 16] requires_grad"
  # t27: "cpu f32[2, 4, 8, 4] requires_grad"
  # t36: "cpu f32[2, 2, 8, 4] requires_grad"
  # t18: "cpu f32[2, 2, 8, 4] requires_grad"
  # sin: "cpu f32[8, 4]"
  # cos: "cpu f32[8, 4]"
  # attn_weight: "cpu f32[32, 16] requires_grad"
  # x: "cpu f32[2, 8, 16]"
  # norm_1_weight: "cpu f32[16] requires_grad"
  # ct_t81: "cpu f32[2, 8, 16]"
  t0 = prims.reshape(ct_t81, shape=[2, 8, 16])  # t0: "cpu f32[2, 8, 16]"
  t1 = prims.matmul(t0, proj_weight)  # t1: "cpu f32[2, 8, 48] requires_grad"
  t2 = prims.reshape(t0, shape=[16, 16])  # t2: "cpu f32[16, 16]"
  t3 = prims.transpose(t2, permutation=[1, 0])  # t3: "cpu f32[16, 16]"
  t4 = prims.neg(t72)  # t4: "cpu f32[2, 8, 48] requires_grad"
  t5 = prims.exp(t4)  # t5: "cpu f32[2, 8, 48] requires_grad"
  t6 = prims.add(t5, 1.0)  # t6: "cpu f32[2, 8, 48] requires_grad"
  t7 = prims.reciprocal(t6)  # t7: "cpu f32[2, 8, 48] requires_grad"
  t8 = prims.mul(t72, t7)  # t8: "cpu f32[2, 8, 48] requires_grad"
  t9 = prims.mul(t8, t73)  # t9: "cpu f32[2, 8, 48] requires_grad"
  t10 = prims.reshape(t9, shape=[16, 48])  # t10: "cpu f32[16, 48] requires_grad"
  t11 = prims.matmul(t3, t10)  # t11: "cpu f32[16, 48] requires_grad"
  t12 = prims.reshape(t11, shape=[16, 48])  # t12: "cpu f32[16, 48] requires_grad"
  t13 = dist.all_reduce(t12, op="avg", world_size=2, async_op=True)  # t13: "cpu f32[16, 48] requires_grad"
  t14 = prims.mul(t1, t73)  # t14: "cpu f32[2, 8, 48] requires_grad"
  t15 = prims.mul(t1, t8)  # t15: "cpu f32[2, 8, 48] requires_grad"
  t16 = prims.mul(t14, t7)  # t16: "cpu f32[2, 8, 48] requires_grad"
  t17 = prims.mul(t14, t72)  # t17: "cpu f32[2, 8, 48] requires_grad"
  t19 = prims.mul(t7, t7)  # t19: "cpu f32[2, 8, 48] requires_grad"
  t20 = prims.mul(t17, t19)  # t20: "cpu f32[2, 8, 48] requires_grad"
  t21 = prims.neg(t20)  # t21: "cpu f32[2, 8, 48] requires_grad"
  t22 = prims.mul(t21, t5)  # t22: "cpu f32[2, 8, 48] requires_grad"
  t23 = prims.neg(t22)  # t23: "cpu f32[2, 8, 48] requires_grad"
  t24 = prims.add(t16, t23)  # t24: "cpu f32[2, 8, 48] requires_grad"
  t25 = prims.reshape(t15, shape=[2, 8, 48])  # t25: "cpu f32[2, 8, 48] requires_grad"
  t26 = prims.matmul(t25, fc_2_weight)  # t26: "cpu f32[2, 8, 16] requires_grad"
  t28 = prims.reshape(t25, shape=[16, 48])  # t28: "cpu f32[16, 48] requires_grad"
  t29 = prims.transpose(t28, permutation=[1, 0])  # t29: "cpu f32[48, 16] requires_grad"
  t39 = ltorch.rms_norm(t62, norm_2_weight, normalized_shape=[16], eps=1e-5)  # t39: "cpu f32[2, 8, 16] requires_grad"
    # t30 = prims.mul(t62, t62)
    # t31 = prims.sum(t30, dims=[2])
    # t32 = prims.div(t31, 16.0)
    # t33 = prims.add(t32, 1e-5)
    # t34 = prims.rsqrt(t33)
    # t35 = prims.broadcast_in_dim(t34, shape=[2, 8, 16], broadcast_dimensions=[0, 1])
    # t37 = prims.mul(t62, t35)
    # t38 = prims.broadcast_in_dim(norm_2_weight, shape=[2, 8, 16], broadcast_dimensions=[2])
    # t39 = prims.mul(t37, t38)
  t40 = prims.reshape(t39, shape=[16, 16])  # t40: "cpu f32[16, 16] requires_grad"
  t41 = prims.matmul(t29, t40)  # t41: "cpu f32[48, 16] requires_grad"
  t42 = prims.reshape(t41, shape=[48, 16])  # t42: "cpu f32[48, 16] requires_grad"
  t43 = dist.all_reduce(t42, op="avg", world_size=2, async_op=True)  # t43: "cpu f32[48, 16] requires_grad"
  t44 = prims.reshape(t24, shape=[2, 8, 48])  # t44: "cpu f32[2, 8, 48] requires_grad"
  t45 = prims.matmul(t44, fc_1_weight)  # t45: "cpu f32[2, 8, 16] requires_grad"
  t46 = prims.reshape(t44, shape=[16, 48])  # t46: "cpu f32[16, 48] requires_grad"
  t47 = prims.transpose(t46, permutation=[1, 0])  # t47: "cpu f32[48, 16] requires_grad"
  t48 = prims.reshape(t39, shape=[16, 16])  # t48: "cpu f32[16, 16] requires_grad"
  t49 = prims.matmul(t47, t48)  # t49: "cpu f32[48, 16] requires_grad"
  t50 = prims.reshape(t49, shape=[48, 16])  # t50: "cpu f32[48, 16] requires_grad"
  t51 = prims.add(t26, t45)  # t51: "cpu f32[2, 8, 16] requires_grad"
  t52 = prims.broadcast_in_dim(norm_2_weight, shape=[2, 8, 16], broadcast_dimensions=[2])  # t52: "cpu f32[2, 8, 16] requires_grad"
  t53 = prims.mul(t51, t52)  # t53: "cpu f32[2, 8, 16] requires_grad"
  t54 = prims.mul(t53, t62)  # t54: "cpu f32[2, 8, 16] requires_grad"
  t55 = prims.sum(t54, dims=[2])  # t55: "cpu f32[2, 8] requires_grad"
  t56 = prims.div(t55, 16.0)  # t56: "cpu f32[2, 8] requires_grad"
  t57 = prims.mul(t62, t62)  # t57: "cpu f32[2, 8, 16] requires_grad"
  t58 = prims.sum(t57, dims=[2])  # t58: "cpu f32[2, 8] requires_grad"
  t59 = prims.div(t58, 16.0)  # t59: "cpu f32[2, 8] requires_grad"
  t60 = prims.add(t59, 1e-5)  # t60: "cpu f32[2, 8] requires_grad"
  t61 = prims.rsqrt(t60)  # t61: "cpu f32[2, 8] requires_grad"
  t63 = prims.mul(t61, t61)  # t63: "cpu f32[2, 8] requires_grad"
  t64 = prims.mul(t56, t63)  # t64: "cpu f32[2, 8] requires_grad"
  t65 = prims.broadcast_in_dim(t64, shape=[2, 8, 16], broadcast_dimensions=[0, 1])  # t65: "cpu f32[2, 8, 16] requires_grad"
  t66 = prims.mul(t62, t65)  # t66: "cpu f32[2, 8, 16] requires_grad"
  t67 = prims.sub(t53, t66)  # t67: "cpu f32[2, 8, 16] requires_grad"
  t68 = prims.broadcast_in_dim(t61, shape=[2, 8, 16], broadcast_dimensions=[0, 1])  # t68: "cpu f32[2, 8, 16] requires_grad"
  t69 = prims.mul(t67, t68)  # t69: "cpu f32[2, 8, 16] requires_grad"
  t70 = prims.mul(t51, t62)  # t70: "cpu f32[2, 8, 16] requires_grad"
  t71 = prims.mul(t70, t68)  # t71: "cpu f32[2, 8, 16] requires_grad"
  t74 = prims.sum(t71, dims=[0, 1])  # t74: "cpu f32[16] requires_grad"
  t75 = ltorch.reshape(t50, shape=[-1])  # t75: "cpu f32[768] requires_grad"
    # t75 = prims.reshape(t50, shape=[768])
  t76 = ltorch.cat([t75, t74], dim=0)  # t76: "cpu f32[784] requires_grad"
    # t76 = prims.cat([t75, t74], dim=0)
  t77 = dist.all_reduce(t76, op="avg", world_size=2, async_op=True)  # t77: "cpu f32[784] requires_grad"
  t78 = prims.add(ct_t81, t69)  # t78: "cpu f32[2, 8, 16] requires_grad"
  t79 = prims.reshape(t78, shape=[2, 8, 16])  # t79: "cpu f32[2, 8, 16] requires_grad"
  t80 = prims.matmul(t79, attn_proj_weight)  # t80: "cpu f32[2, 8, 16] requires_grad"
  t81 = prims.reshape(t79, shape=[16, 16])  # t81: "cpu f32[16, 16] requires_grad"
  t82 = prims.transpose(t81, permutation=[1, 0])  # t82: "cpu f32[16, 16] requires_grad"
  t83 = prims.matmul(t82, t138)  # t83: "cpu f32[16, 16] requires_grad"
  t84 = prims.reshape(t83, shape=[16, 16])  # t84: "cpu f32[16, 16] requires_grad"
  t85 = prims.reshape(t80, shape=[2, 8, 4, 4])  # t85: "cpu f32[2, 8, 4, 4] requires_grad"
  t86 = prims.transpose(t85, permutation=[0, 2, 1, 3])  # t86: "cpu f32[2, 4, 8, 4] requires_grad"
  t118, t123, t125 = ltorch.scaled_dot_product_attention_backward(t86, t27, t36, t18, None, is_causal=True, scale=None, enable_gqa=True)  # t118: "cpu f32[2, 4, 8, 4] requires_grad", t123: "cpu f32[2, 2, 8, 4] requires_grad", t125: "cpu f32[2, 2, 8, 4] requires_grad"
    # t87 = prims.broadcast_in_dim(t36, shape=[2, 2, 2, 8, 4], broadcast_dimensions=[0, 1, 3, 4])
    # t88 = prims.reshape(t87, shape=[2, 4, 8, 4])
    # t89 = prims.broadcast_in_dim(t18, shape=[2, 2, 2, 8, 4], broadcast_dimensions=[0, 1, 3, 4])
    # t90 = prims.reshape(t89, shape=[2, 4, 8, 4])
    # t91 = prims.transpose(t88, permutation=[0, 1, 3, 2])
    # t92 = prims.matmul(t27, t91)
    # t93 = prims.mul(t92, 0.5)
    # t94 = prims.iota(length=8, start=0, step=1, device="cpu", dtype=dtypes.int64)
    # t95 = prims.iota(length=8, start=0, step=1, device="cpu", dtype=dtypes.int64)
    # t96 = prims.broadcast_in_dim(t94, shape=[8, 8], broadcast_dimensions=[0])
    # t97 = prims.broadcast_in_dim(t95, shape=[8, 8], broadcast_dimensions=[1])
    # t98 = prims.ge(t96, t97)
    # t99 = prims.broadcast_in_dim(t98, shape=[2, 4, 8, 8], broadcast_dimensions=[2, 3])
    # t100 = prims.where(t99, t93, -float('inf'))
    # t107 = ltorch.softmax(t100, dim=-1, dtype=None)
      # t101 = prims.amax(t100, dims=[3])
      # t102 = prims.broadcast_in_dim(t101, shape=[2, 4, 8, 8], broadcast_dimensions=[0, 1, 2])
      # t103 = prims.sub(t100, t102)
      # t104 = prims.exp(t103)
      # t105 = prims.sum(t104, dims=[3])
      # t106 = prims.broadcast_in_dim(t105, shape=[2, 4, 8, 8], broadcast_dimensions=[0, 1, 2])
      # t107 = prims.div(t104, t106)
    # t108 = prims.transpose(t107, permutation=[0, 1, 3, 2])
    # t109 = prims.matmul(t108, t86)
    # t110 = prims.transpose(t90, permutation=[0, 1, 3, 2])
    # t111 = prims.matmul(t86, t110)
    # t112 = prims.mul(t107, t111)
    # t113 = prims.sum(t112, dims=[3])
    # t114 = prims.broadcast_in_dim(t113, shape=[2, 4, 8, 8], broadcast_dimensions=[0, 1, 2])
    # t115 = prims.sub(t111, t114)
    # t116 = prims.mul(t107, t115)
    # t117 = prims.matmul(t116, t88)
    # t118 = prims.mul(t117, 0.5)
    # t119 = prims.transpose(t116, permutation=[0, 1, 3, 2])
    # t120 = prims.matmul(t119, t27)
    # t121 = prims.mul(t120, 0.5)
    # t122 = prims.reshape(t121, shape=[2, 2, 2, 8, 4])
    # t123 = prims.sum(t122, dims=[2])
    # t124 = prims.reshape(t109, shape=[2, 2, 2, 8, 4])
    # t125 = prims.sum(t124, dims=[2])
  t126 = prims.broadcast_in_dim(sin, shape=[2, 2, 8, 4], broadcast_dimensions=[2, 3])  # t126: "cpu f32[2, 2, 8, 4]"
  t127 = prims.mul(t123, t126)  # t127: "cpu f32[2, 2, 8, 4] requires_grad"
  t128 = prims.broadcast_in_dim(cos, shape=[2, 2, 8, 4], broadcast_dimensions=[2, 3])  # t128: "cpu f32[2, 2, 8, 4]"
  t129 = prims.mul(t123, t128)  # t129: "cpu f32[2, 2, 8, 4] requires_grad"
  t130 = prims.slice(t127, start_indices=[0, 0, 0, 0], end_indices=[2, 2, 8, 2], strides=[1, 1, 1, 1])  # t130: "cpu f32[2, 2, 8, 2] requires_grad"
  t131 = prims.slice(t127, start_indices=[0, 0, 0, 2], end_indices=[2, 2, 8, 4], strides=[1, 1, 1, 1])  # t131: "cpu f32[2, 2, 8, 2] requires_grad"
  t132 = prims.neg(t130)  # t132: "cpu f32[2, 2, 8, 2] requires_grad"
  t133 = prims.pad(t132, padding_value=0.0, padding_config=[[0, 0, 0], [0, 0, 0], [0, 0, 0], [2, 0, 0]])  # t133: "cpu f32[2, 2, 8, 4] requires_grad"
  t134 = prims.add(t129, t133)  # t134: "cpu f32[2, 2, 8, 4] requires_grad"
  t135 = prims.pad(t131, padding_value=0.0, padding_config=[[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 2, 0]])  # t135: "cpu f32[2, 2, 8, 4] requires_grad"
  t136 = prims.add(t134, t135)  # t136: "cpu f32[2, 2, 8, 4] requires_grad"
  t137 = prims.broadcast_in_dim(sin, shape=[2, 4, 8, 4], broadcast_dimensions=[2, 3])  # t137: "cpu f32[2, 4, 8, 4]"
  t139 = prims.mul(t118, t137)  # t139: "cpu f32[2, 4, 8, 4] requires_grad"
  t140 = prims.broadcast_in_dim(cos, shape=[2, 4, 8, 4], broadcast_dimensions=[2, 3])  # t140: "cpu f32[2, 4, 8, 4]"
  t141 = prims.mul(t118, t140)  # t141: "cpu f32[2, 4, 8, 4] requires_grad"
  t142 = prims.slice(t139, start_indices=[0, 0, 0, 0], end_indices=[2, 4, 8, 2], strides=[1, 1, 1, 1])  # t142: "cpu f32[2, 4, 8, 2] requires_grad"
  t143 = prims.slice(t139, start_indices=[0, 0, 0, 2], end_indices=[2, 4, 8, 4], strides=[1, 1, 1, 1])  # t143: "cpu f32[2, 4, 8, 2] requires_grad"
  t144 = prims.neg(t142)  # t144: "cpu f32[2, 4, 8, 2] requires_grad"
  t145 = prims.pad(t144, padding_value=0.0, padding_config=[[0, 0, 0], [0, 0, 0], [0, 0, 0], [2, 0, 0]])  # t145: "cpu f32[2, 4, 8, 4] requires_grad"
  t146 = prims.add(t141, t145)  # t146: "cpu f32[2, 4, 8, 4] requires_grad"
  t147 = prims.pad(t143, padding_value=0.0, padding_config=[[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 2, 0]])  # t147: "cpu f32[2, 4, 8, 4] requires_grad"
  t148 = prims.add(t146, t147)  # t148: "cpu f32[2, 4, 8, 4] requires_grad"
  t149 = prims.transpose(t125, permutation=[0, 2, 1, 3])  # t149: "cpu f32[2, 8, 2, 4] requires_grad"
  t150 = prims.reshape(t149, shape=[2, 8, 8])  # t150: "cpu f32[2, 8, 8] requires_grad"
  t151 = prims.transpose(t136, permutation=[0, 2, 1, 3])  # t151: "cpu f32[2, 8, 2, 4] requires_grad"
  t152 = prims.reshape(t151, shape=[2, 8, 8])  # t152: "cpu f32[2, 8, 8] requires_grad"
  t153 = prims.transpose(t148, permutation=[0, 2, 1, 3])  # t153: "cpu f32[2, 8, 4, 4] requires_grad"
  t154 = prims.reshape(t153, shape=[2, 8, 16])  # t154: "cpu f32[2, 8, 16] requires_grad"
  t155 = prims.pad(t150, padding_value=0.0, padding_config=[[0, 0, 0], [0, 0, 0], [24, 0, 0]])  # t155: "cpu f32[2, 8, 32] requires_grad"
  t156 = prims.pad(t152, padding_value=0.0, padding_config=[[0, 0, 0], [0, 0, 0], [16, 8, 0]])  # t156: "cpu f32[2, 8, 32] requires_grad"
  t157 = prims.add(t155, t156)  # t157: "cpu f32[2, 8, 32] requires_grad"
  t158 = prims.pad(t154, padding_value=0.0, padding_config=[[0, 0, 0], [0, 0, 0], [0, 16, 0]])  # t158: "cpu f32[2, 8, 32] requires_grad"
  t159 = prims.add(t157, t158)  # t159: "cpu f32[2, 8, 32] requires_grad"
  t160 = prims.reshape(t159, shape=[2, 8, 32])  # t160: "cpu f32[2, 8, 32] requires_grad"
  t161 = prims.matmul(t160, attn_weight)  # t161: "cpu f32[2, 8, 16] requires_grad"
  t162 = prims.reshape(t160, shape=[16, 32])  # t162: "cpu f32[16, 32] requires_grad"
  t163 = prims.transpose(t162, permutation=[1, 0])  # t163: "cpu f32[32, 16] requires_grad"
  t172 = ltorch.rms_norm(x, norm_1_weight, normalized_shape=[16], eps=1e-5)  # t172: "cpu f32[2, 8, 16] requires_grad"
    # t164 = prims.mul(x, x)
    # t165 = prims.sum(t164, dims=[2])
    # t166 = prims.div(t165, 16.0)
    # t167 = prims.add(t166, 1e-5)
    # t168 = prims.rsqrt(t167)
    # t169 = prims.broadcast_in_dim(t168, shape=[2, 8, 16], broadcast_dimensions=[0, 1])
    # t170 = prims.mul(x, t169)
    # t171 = prims.broadcast_in_dim(norm_1_weight, shape=[2, 8, 16], broadcast_dimensions=[2])
    # t172 = prims.mul(t170, t171)
  t173 = prims.reshape(t172, shape=[16, 16])  # t173: "cpu f32[16, 16] requires_grad"
  t174 = prims.matmul(t163, t173)  # t174: "cpu f32[32, 16] requires_grad"
  t175 = prims.reshape(t174, shape=[32, 16])  # t175: "cpu f32[32, 16] requires_grad"
  t176 = prims.mul(t161, x)  # t176: "cpu f32[2, 8, 16] requires_grad"
  t177 = prims.mul(x, x)  # t177: "cpu f32[2, 8, 16]"
  t178 = prims.sum(t177, dims=[2])  # t178: "cpu f32[2, 8]"
  t179 = prims.div(t178, 16.0)  # t179: "cpu f32[2, 8]"
  t180 = prims.add(t179, 1e-5)  # t180: "cpu f32[2, 8]"
  t181 = prims.rsqrt(t180)  # t181: "cpu f32[2, 8]"
  t182 = prims.broadcast_in_dim(t181, shape=[2, 8, 16], broadcast_dimensions=[0, 1])  # t182: "cpu f32[2, 8, 16]"
  t183 = prims.mul(t176, t182)  # t183: "cpu f32[2, 8, 16] requires_grad"
  t184 = prims.sum(t183, dims=[0, 1])  # t184: "cpu f32[16] requires_grad"
  t185 = ltorch.reshape(t84, shape=[-1])  # t185: "cpu f32[256] requires_grad"
    # t185 = prims.reshape(t84, shape=[256])
  t186 = ltorch.reshape(t175, shape=[-1])  # t186: "cpu f32[512] requires_grad"
    # t186 = prims.reshape(t175, shape=[512])
  t187 = ltorch.cat([t185, t186, t184], dim=0)  # t187: "cpu f32[784] requires_grad"
    # t187 = prims.cat([t185, t186, t184], dim=0)
  t188 = dist.all_reduce(t187, op="avg", world_size=2, async_op=True)  # t188: "cpu f32[784] requires_grad"
  t189 = dist.wait(t13)  # t189: "cpu f32[16, 48] requires_grad"
  t190 = dist.wait(t43)  # t190: "cpu f32[48, 16] requires_grad"
  t191 = dist.wait(t77)  # t191: "cpu f32[784] requires_grad"
  t192 = ltorch.narrow(t191, dim=0, start=0, length=768)  # t192: "cpu f32[768] requires_grad"
    # t192 = prims.slice(t191, start_indices=[0], end_indices=[768], strides=[1])
  t193 = ltorch.reshape(t192, shape=[48, 16])  # t193: "cpu f32[48, 16] requires_grad"
    # t193 = prims.reshape(t192, shape=[48, 16])
  t194 = ltorch.narrow(t191, dim=0, start=768, length=16)  # t194: "cpu f32[16] requires_grad"
    # t194 = prims.slice(t191, start_indices=[768], end_indices=[784], strides=[1])
  t195 = dist.wait(t188)  # t195: "cpu f32[784] requires_grad"
  t196 = ltorch.narrow(t195, dim=0, start=0, length=256)  # t196: "cpu f32[256] requires_grad"
    # t196 = prims.slice(t195, start_indices=[0], end_indices=[256], strides=[1])
  t197 = ltorch.reshape(t196, shape=[16, 16])  # t197: "cpu f32[16, 16] requires_grad"
    # t197 = prims.reshape(t196, shape=[16, 16])
  t198 = ltorch.narrow(t195, dim=0, start=256, length=512)  # t198: "cpu f32[512] requires_grad"
    # t198 = prims.slice(t195, start_indices=[256], end_indices=[768], strides=[1])
  t199 = ltorch.reshape(t198, shape=[32, 16])  # t199: "cpu f32[32, 16] requires_grad"
    # t199 = prims.reshape(t198, shape=[32, 16])
  t200 = ltorch.narrow(t195, dim=0, start=768, length=16)  # t200: "cpu f32[16] requires_grad"
    # t200 = prims.slice(t195, start_indices=[768], end_indices=[784], strides=[1])
  return (t200, t194, t199, t197, t193, t190, t189)
