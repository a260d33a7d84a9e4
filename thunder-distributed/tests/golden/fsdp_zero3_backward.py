# Printed by thunder-rs (thunder-ir 0.1.0)
import thunder.core.prims as prims
import thunder.torch as ltorch
from thunder.core import dtypes
import thunder.distributed.prims as dist

def block_loss_backward_fsdp(proj_weight_shard, t72, t73, fc_2_weight_shard, t62, norm_2_weight_shard, fc_1_weight_shard, attn_proj_weight_shard, t142, t27, t36, t18, sin, cos, attn_weight_shard, x, norm_1_weight_shard, ct_t83):
  # proj_weight_shard: "cpu f32[6, 48]"
  # t72: "cpu f32[1, 8, 48] requires_grad"
  # t73: "cpu f32[1, 8, 48] requires_grad"
  # fc_2_weight_shard: "cpu f32[16, 16]"
  # t62: "cpu f32[1, 8, 16] requires_grad"
  # norm_2_weight_shard: "cpu f32[6]"
  # fc_1_weight_shard: "cpu f32[16, 16]"
  # attn_proj_weight_shard: "cpu f32[6, 16]"
  # t142: "cpu f32[8, 16] requires_grad"
  # t27: "cpu f32[1, 4, 8, 4] requires_grad"
  # t36: "cpu f32[1, 2, 8, 4] requires_grad"
  # t18: "cpu f32[1, 2, 8, 4] requires_grad"
  # sin: "cpu f32[8, 4]"
  # cos: "cpu f32[8, 4]"
  # attn_weight_shard: "cpu f32[11, 16]"
  # x: "cpu f32[1, 8, 16]"
  # norm_1_weight_shard: "cpu f32[6]"
  # ct_t83: "cpu f32[]"
  t0 = ltorch.reshape(proj_weight_shard, shape=[-1])  # t0: "cpu f32[288]"
    # t0 = prims.reshape(proj_weight_shard, shape=[288])
  t1 = dist.all_gather(t0, world_size=3, async_op=True)  # t1: "cpu f32[864]"
  t2 = ltorch.reshape(fc_2_weight_shard, shape=[-1])  # t2: "cpu f32[256]"
    # t2 = prims.reshape(fc_2_weight_shard, shape=[256])
  t3 = ltorch.cat([t2, norm_2_weight_shard], dim=0)  # t3: "cpu f32[262]"
    # t3 = prims.cat([t2, norm_2_weight_shard], dim=0)
  t4 = dist.all_gather(t3, world_size=3, async_op=True)  # t4: "cpu f32[786]"
  t5 = prims.div(ct_t83, 128.0)  # t5: "cpu f32[]"
  t6 = prims.broadcast_in_dim(t5, shape=[1, 8, 16], broadcast_dimensions=[])  # t6: "cpu f32[1, 8, 16]"
  t7 = prims.reshape(t6, shape=[1, 8, 16])  # t7: "cpu f32[1, 8, 16]"
  t8 = dist.wait(t1)  # t8: "cpu f32[864]"
  t9 = ltorch.reshape(t8, shape=[3, 288])  # t9: "cpu f32[3, 288]"
    # t9 = prims.reshape(t8, shape=[3, 288])
  t10 = ltorch.reshape(t9, shape=[18, 48])  # t10: "cpu f32[18, 48]"
    # t10 = prims.reshape(t9, shape=[18, 48])
  t11 = ltorch.narrow(t10, dim=0, start=0, length=16)  # t11: "cpu f32[16, 48]"
    # t11 = prims.slice(t10, start_indices=[0, 0], end_indices=[16, 48], strides=[1, 1])
  t12 = prims.matmul(t7, t11)  # t12: "cpu f32[1, 8, 48]"
  t13 = prims.reshape(t7, shape=[8, 16])  # t13: "cpu f32[8, 16]"
  t14 = prims.transpose(t13, permutation=[1, 0])  # t14: "cpu f32[16, 8]"
  t15 = prims.neg(t72)  # t15: "cpu f32[1, 8, 48] requires_grad"
  t16 = prims.exp(t15)  # t16: "cpu f32[1, 8, 48] requires_grad"
  t17 = prims.add(t16, 1.0)  # t17: "cpu f32[1, 8, 48] requires_grad"
  t19 = prims.reciprocal(t17)  # t19: "cpu f32[1, 8, 48] requires_grad"
  t20 = prims.mul(t72, t19)  # t20: "cpu f32[1, 8, 48] requires_grad"
  t21 = prims.mul(t20, t73)  # t21: "cpu f32[1, 8, 48] requires_grad"
  t22 = prims.reshape(t21, shape=[8, 48])  # t22: "cpu f32[8, 48] requires_grad"
  t23 = prims.matmul(t14, t22)  # t23: "cpu f32[16, 48] requires_grad"
  t24 = prims.reshape(t23, shape=[16, 48])  # t24: "cpu f32[16, 48] requires_grad"
  t25 = ltorch.zeros(shape=[2, 48], dtype=dtypes.float32, device="cpu")  # t25: "cpu f32[2, 48]"
    # t25 = prims.full(shape=[2, 48], fill_value=0, device="cpu", dtype=dtypes.float32)
  t26 = ltorch.cat([t24, t25], dim=0)  # t26: "cpu f32[18, 48] requires_grad"
    # t26 = prims.cat([t24, t25], dim=0)
  t28 = ltorch.reshape(t26, shape=[3, 288])  # t28: "cpu f32[3, 288] requires_grad"
    # t28 = prims.reshape(t26, shape=[3, 288])
  t29 = ltorch.reshape(t28, shape=[-1])  # t29: "cpu f32[864] requires_grad"
    # t29 = prims.reshape(t28, shape=[864])
  t30 = dist.reduce_scatter(t29, op="avg", world_size=3, async_op=True)  # t30: "cpu f32[288] requires_grad"
  t31 = prims.mul(t12, t73)  # t31: "cpu f32[1, 8, 48] requires_grad"
  t32 = prims.mul(t12, t20)  # t32: "cpu f32[1, 8, 48] requires_grad"
  t33 = prims.mul(t31, t19)  # t33: "cpu f32[1, 8, 48] requires_grad"
  t34 = prims.mul(t31, t72)  # t34: "cpu f32[1, 8, 48] requires_grad"
  t35 = prims.mul(t19, t19)  # t35: "cpu f32[1, 8, 48] requires_grad"
  t37 = prims.mul(t34, t35)  # t37: "cpu f32[1, 8, 48] requires_grad"
  t38 = prims.neg(t37)  # t38: "cpu f32[1, 8, 48] requires_grad"
  t39 = prims.mul(t38, t16)  # t39: "cpu f32[1, 8, 48] requires_grad"
  t40 = prims.neg(t39)  # t40: "cpu f32[1, 8, 48] requires_grad"
  t41 = prims.add(t33, t40)  # t41: "cpu f32[1, 8, 48] requires_grad"
  t42 = prims.reshape(t32, shape=[1, 8, 48])  # t42: "cpu f32[1, 8, 48] requires_grad"
  t43 = ltorch.reshape(fc_1_weight_shard, shape=[-1])  # t43: "cpu f32[256]"
    # t43 = prims.reshape(fc_1_weight_shard, shape=[256])
  t44 = ltorch.reshape(attn_proj_weight_shard, shape=[-1])  # t44: "cpu f32[96]"
    # t44 = prims.reshape(attn_proj_weight_shard, shape=[96])
  t45 = ltorch.cat([t43, t44], dim=0)  # t45: "cpu f32[352]"
    # t45 = prims.cat([t43, t44], dim=0)
  t46 = dist.all_gather(t45, world_size=3, async_op=True)  # t46: "cpu f32[1056]"
  t47 = dist.wait(t4)  # t47: "cpu f32[786]"
  t48 = ltorch.reshape(t47, shape=[3, 262])  # t48: "cpu f32[3, 262]"
    # t48 = prims.reshape(t47, shape=[3, 262])
  t49 = ltorch.narrow(t48, dim=1, start=0, length=256)  # t49: "cpu f32[3, 256]"
    # t49 = prims.slice(t48, start_indices=[0, 0], end_indices=[3, 256], strides=[1, 1])
  t50 = ltorch.reshape(t49, shape=[48, 16])  # t50: "cpu f32[48, 16]"
    # t50 = prims.reshape(t49, shape=[48, 16])
  t51 = ltorch.narrow(t48, dim=1, start=256, length=6)  # t51: "cpu f32[3, 6]"
    # t51 = prims.slice(t48, start_indices=[0, 256], end_indices=[3, 262], strides=[1, 1])
  t52 = ltorch.reshape(t51, shape=[18])  # t52: "cpu f32[18]"
    # t52 = prims.reshape(t51, shape=[18])
  t53 = ltorch.narrow(t52, dim=0, start=0, length=16)  # t53: "cpu f32[16]"
    # t53 = prims.slice(t52, start_indices=[0], end_indices=[16], strides=[1])
  t54 = prims.matmul(t42, t50)  # t54: "cpu f32[1, 8, 16] requires_grad"
  t55 = prims.reshape(t42, shape=[8, 48])  # t55: "cpu f32[8, 48] requires_grad"
  t56 = prims.transpose(t55, permutation=[1, 0])  # t56: "cpu f32[48, 8] requires_grad"
  t66 = ltorch.rms_norm(t62, t53, normalized_shape=[16], eps=1e-5)  # t66: "cpu f32[1, 8, 16] requires_grad"
    # t57 = prims.mul(t62, t62)
    # t58 = prims.sum(t57, dims=[2])
    # t59 = prims.div(t58, 16.0)
    # t60 = prims.add(t59, 1e-5)
    # t61 = prims.rsqrt(t60)
    # t63 = prims.broadcast_in_dim(t61, shape=[1, 8, 16], broadcast_dimensions=[0, 1])
    # t64 = prims.mul(t62, t63)
    # t65 = prims.broadcast_in_dim(t53, shape=[1, 8, 16], broadcast_dimensions=[2])
    # t66 = prims.mul(t64, t65)
  t67 = prims.reshape(t66, shape=[8, 16])  # t67: "cpu f32[8, 16] requires_grad"
  t68 = prims.matmul(t56, t67)  # t68: "cpu f32[48, 16] requires_grad"
  t69 = prims.reshape(t68, shape=[48, 16])  # t69: "cpu f32[48, 16] requires_grad"
  t70 = ltorch.reshape(t69, shape=[3, 256])  # t70: "cpu f32[3, 256] requires_grad"
    # t70 = prims.reshape(t69, shape=[3, 256])
  t71 = ltorch.reshape(t70, shape=[-1])  # t71: "cpu f32[768] requires_grad"
    # t71 = prims.reshape(t70, shape=[768])
  t74 = dist.reduce_scatter(t71, op="avg", world_size=3, async_op=True)  # t74: "cpu f32[256] requires_grad"
  t75 = prims.reshape(t41, shape=[1, 8, 48])  # t75: "cpu f32[1, 8, 48] requires_grad"
  t76 = ltorch.reshape(attn_weight_shard, shape=[-1])  # t76: "cpu f32[176]"
    # t76 = prims.reshape(attn_weight_shard, shape=[176])
  t77 = ltorch.cat([t76, norm_1_weight_shard], dim=0)  # t77: "cpu f32[182]"
    # t77 = prims.cat([t76, norm_1_weight_shard], dim=0)
  t78 = dist.all_gather(t77, world_size=3, async_op=True)  # t78: "cpu f32[546]"
  t79 = dist.wait(t46)  # t79: "cpu f32[1056]"
  t80 = ltorch.reshape(t79, shape=[3, 352])  # t80: "cpu f32[3, 352]"
    # t80 = prims.reshape(t79, shape=[3, 352])
  t81 = ltorch.narrow(t80, dim=1, start=0, length=256)  # t81: "cpu f32[3, 256]"
    # t81 = prims.slice(t80, start_indices=[0, 0], end_indices=[3, 256], strides=[1, 1])
  t82 = ltorch.reshape(t81, shape=[48, 16])  # t82: "cpu f32[48, 16]"
    # t82 = prims.reshape(t81, shape=[48, 16])
  t83 = ltorch.narrow(t80, dim=1, start=256, length=96)  # t83: "cpu f32[3, 96]"
    # t83 = prims.slice(t80, start_indices=[0, 256], end_indices=[3, 352], strides=[1, 1])
  t84 = ltorch.reshape(t83, shape=[18, 16])  # t84: "cpu f32[18, 16]"
    # t84 = prims.reshape(t83, shape=[18, 16])
  t85 = ltorch.narrow(t84, dim=0, start=0, length=16)  # t85: "cpu f32[16, 16]"
    # t85 = prims.slice(t84, start_indices=[0, 0], end_indices=[16, 16], strides=[1, 1])
  t86 = prims.matmul(t75, t82)  # t86: "cpu f32[1, 8, 16] requires_grad"
  t87 = prims.reshape(t75, shape=[8, 48])  # t87: "cpu f32[8, 48] requires_grad"
  t88 = prims.transpose(t87, permutation=[1, 0])  # t88: "cpu f32[48, 8] requires_grad"
  t89 = prims.reshape(t66, shape=[8, 16])  # t89: "cpu f32[8, 16] requires_grad"
  t90 = prims.matmul(t88, t89)  # t90: "cpu f32[48, 16] requires_grad"
  t91 = prims.reshape(t90, shape=[48, 16])  # t91: "cpu f32[48, 16] requires_grad"
  t92 = prims.add(t54, t86)  # t92: "cpu f32[1, 8, 16] requires_grad"
  t93 = prims.broadcast_in_dim(t53, shape=[1, 8, 16], broadcast_dimensions=[2])  # t93: "cpu f32[1, 8, 16]"
  t94 = prims.mul(t92, t93)  # t94: "cpu f32[1, 8, 16] requires_grad"
  t95 = prims.mul(t94, t62)  # t95: "cpu f32[1, 8, 16] requires_grad"
  t96 = prims.sum(t95, dims=[2])  # t96: "cpu f32[1, 8] requires_grad"
  t97 = prims.div(t96, 16.0)  # t97: "cpu f32[1, 8] requires_grad"
  t98 = prims.mul(t62, t62)  # t98: "cpu f32[1, 8, 16] requires_grad"
  t99 = prims.sum(t98, dims=[2])  # t99: "cpu f32[1, 8] requires_grad"
  t100 = prims.div(t99, 16.0)  # t100: "cpu f32[1, 8] requires_grad"
  t101 = prims.add(t100, 1e-5)  # t101: "cpu f32[1, 8] requires_grad"
  t102 = prims.rsqrt(t101)  # t102: "cpu f32[1, 8] requires_grad"
  t103 = prims.mul(t102, t102)  # t103: "cpu f32[1, 8] requires_grad"
  t104 = prims.mul(t97, t103)  # t104: "cpu f32[1, 8] requires_grad"
  t105 = prims.broadcast_in_dim(t104, shape=[1, 8, 16], broadcast_dimensions=[0, 1])  # t105: "cpu f32[1, 8, 16] requires_grad"
  t106 = prims.mul(t62, t105)  # t106: "cpu f32[1, 8, 16] requires_grad"
  t107 = prims.sub(t94, t106)  # t107: "cpu f32[1, 8, 16] requires_grad"
  t108 = prims.broadcast_in_dim(t102, shape=[1, 8, 16], broadcast_dimensions=[0, 1])  # t108: "cpu f32[1, 8, 16] requires_grad"
  t109 = prims.mul(t107, t108)  # t109: "cpu f32[1, 8, 16] requires_grad"
  t110 = prims.mul(t92, t62)  # t110: "cpu f32[1, 8, 16] requires_grad"
  t111 = prims.mul(t110, t108)  # t111: "cpu f32[1, 8, 16] requires_grad"
  t112 = prims.sum(t111, dims=[0, 1])  # t112: "cpu f32[16] requires_grad"
  t113 = ltorch.reshape(t91, shape=[3, 256])  # t113: "cpu f32[3, 256] requires_grad"
    # t113 = prims.reshape(t91, shape=[3, 256])
  t114 = ltorch.zeros(shape=[2], dtype=dtypes.float32, device="cpu")  # t114: "cpu f32[2]"
    # t114 = prims.full(shape=[2], fill_value=0, device="cpu", dtype=dtypes.float32)
  t115 = ltorch.cat([t112, t114], dim=0)  # t115: "cpu f32[18] requires_grad"
    # t115 = prims.cat([t112, t114], dim=0)
  t116 = ltorch.reshape(t115, shape=[3, 6])  # t116: "cpu f32[3, 6] requires_grad"
    # t116 = prims.reshape(t115, shape=[3, 6])
  t117 = ltorch.cat([t113, t116], dim=1)  # t117: "cpu f32[3, 262] requires_grad"
    # t117 = prims.cat([t113, t116], dim=1)
  t118 = ltorch.reshape(t117, shape=[-1])  # t118: "cpu f32[786] requires_grad"
    # t118 = prims.reshape(t117, shape=[786])
  t119 = dist.reduce_scatter(t118, op="avg", world_size=3, async_op=True)  # t119: "cpu f32[262] requires_grad"
  t120 = prims.add(t6, t109)  # t120: "cpu f32[1, 8, 16] requires_grad"
  t121 = prims.reshape(t120, shape=[1, 8, 16])  # t121: "cpu f32[1, 8, 16] requires_grad"
  t122 = prims.matmul(t121, t85)  # t122: "cpu f32[1, 8, 16] requires_grad"
  t123 = prims.reshape(t121, shape=[8, 16])  # t123: "cpu f32[8, 16] requires_grad"
  t124 = prims.transpose(t123, permutation=[1, 0])  # t124: "cpu f32[16, 8] requires_grad"
  t125 = prims.matmul(t124, t142)  # t125: "cpu f32[16, 16] requires_grad"
  t126 = prims.reshape(t125, shape=[16, 16])  # t126: "cpu f32[16, 16] requires_grad"
  t127 = prims.reshape(t122, shape=[1, 8, 4, 4])  # t127: "cpu f32[1, 8, 4, 4] requires_grad"
  t128 = prims.transpose(t127, permutation=[0, 2, 1, 3])  # t128: "cpu f32[1, 4, 8, 4] requires_grad"
  t161, t166, t168 = ltorch.scaled_dot_product_attention_backward(t128, t27, t36, t18, None, is_causal=True, scale=None, enable_gqa=True)  # t161: "cpu f32[1, 4, 8, 4] requires_grad", t166: "cpu f32[1, 2, 8, 4] requires_grad", t168: "cpu f32[1, 2, 8, 4] requires_grad"
    # t129 = prims.broadcast_in_dim(t36, shape=[1, 2, 2, 8, 4], broadcast_dimensions=[0, 1, 3, 4])
    # t130 = prims.reshape(t129, shape=[1, 4, 8, 4])
    # t131 = prims.broadcast_in_dim(t18, shape=[1, 2, 2, 8, 4], broadcast_dimensions=[0, 1, 3, 4])
    # t132 = prims.reshape(t131, shape=[1, 4, 8, 4])
    # t133 = prims.transpose(t130, permutation=[0, 1, 3, 2])
    # t134 = prims.matmul(t27, t133)
    # t135 = prims.mul(t134, 0.5)
    # t136 = prims.iota(length=8, start=0, step=1, device="cpu", dtype=dtypes.int64)
    # t137 = prims.iota(length=8, start=0, step=1, device="cpu", dtype=dtypes.int64)
    # t138 = prims.broadcast_in_dim(t136, shape=[8, 8], broadcast_dimensions=[0])
    # t139 = prims.broadcast_in_dim(t137, shape=[8, 8], broadcast_dimensions=[1])
    # t140 = prims.ge(t138, t139)
    # t141 = prims.broadcast_in_dim(t140, shape=[1, 4, 8, 8], broadcast_dimensions=[2, 3])
    # t143 = prims.where(t141, t135, -float('inf'))
    # t150 = ltorch.softmax(t143, dim=-1, dtype=None)
      # t144 = prims.amax(t143, dims=[3])
      # t145 = prims.broadcast_in_dim(t144, shape=[1, 4, 8, 8], broadcast_dimensions=[0, 1, 2])
      # t146 = prims.sub(t143, t145)
      # t147 = prims.exp(t146)
      # t148 = prims.sum(t147, dims=[3])
      # t149 = prims.broadcast_in_dim(t148, shape=[1, 4, 8, 8], broadcast_dimensions=[0, 1, 2])
      # t150 = prims.div(t147, t149)
    # t151 = prims.transpose(t150, permutation=[0, 1, 3, 2])
    # t152 = prims.matmul(t151, t128)
    # t153 = prims.transpose(t132, permutation=[0, 1, 3, 2])
    # t154 = prims.matmul(t128, t153)
    # t155 = prims.mul(t150, t154)
    # t156 = prims.sum(t155, dims=[3])
    # t157 = prims.broadcast_in_dim(t156, shape=[1, 4, 8, 8], broadcast_dimensions=[0, 1, 2])
    # t158 = prims.sub(t154, t157)
    # t159 = prims.mul(t150, t158)
    # t160 = prims.matmul(t159, t130)
    # t161 = prims.mul(t160, 0.5)
    # t162 = prims.transpose(t159, permutation=[0, 1, 3, 2])
    # t163 = prims.matmul(t162, t27)
    # t164 = prims.mul(t163, 0.5)
    # t165 = prims.reshape(t164, shape=[1, 2, 2, 8, 4])
    # t166 = prims.sum(t165, dims=[2])
    # t167 = prims.reshape(t152, shape=[1, 2, 2, 8, 4])
    # t168 = prims.sum(t167, dims=[2])
  t169 = prims.broadcast_in_dim(sin, shape=[1, 2, 8, 4], broadcast_dimensions=[2, 3])  # t169: "cpu f32[1, 2, 8, 4]"
  t170 = prims.mul(t166, t169)  # t170: "cpu f32[1, 2, 8, 4] requires_grad"
  t171 = prims.broadcast_in_dim(cos, shape=[1, 2, 8, 4], broadcast_dimensions=[2, 3])  # t171: "cpu f32[1, 2, 8, 4]"
  t172 = prims.mul(t166, t171)  # t172: "cpu f32[1, 2, 8, 4] requires_grad"
  t173 = prims.slice(t170, start_indices=[0, 0, 0, 0], end_indices=[1, 2, 8, 2], strides=[1, 1, 1, 1])  # t173: "cpu f32[1, 2, 8, 2] requires_grad"
  t174 = prims.slice(t170, start_indices=[0, 0, 0, 2], end_indices=[1, 2, 8, 4], strides=[1, 1, 1, 1])  # t174: "cpu f32[1, 2, 8, 2] requires_grad"
  t175 = prims.neg(t173)  # t175: "cpu f32[1, 2, 8, 2] requires_grad"
  t176 = prims.pad(t175, padding_value=0.0, padding_config=[[0, 0, 0], [0, 0, 0], [0, 0, 0], [2, 0, 0]])  # t176: "cpu f32[1, 2, 8, 4] requires_grad"
  t177 = prims.add(t172, t176)  # t177: "cpu f32[1, 2, 8, 4] requires_grad"
  t178 = prims.pad(t174, padding_value=0.0, padding_config=[[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 2, 0]])  # t178: "cpu f32[1, 2, 8, 4] requires_grad"
  t179 = prims.add(t177, t178)  # t179: "cpu f32[1, 2, 8, 4] requires_grad"
  t180 = prims.broadcast_in_dim(sin, shape=[1, 4, 8, 4], broadcast_dimensions=[2, 3])  # t180: "cpu f32[1, 4, 8, 4]"
  t181 = prims.mul(t161, t180)  # t181: "cpu f32[1, 4, 8, 4] requires_grad"
  t182 = prims.broadcast_in_dim(cos, shape=[1, 4, 8, 4], broadcast_dimensions=[2, 3])  # t182: "cpu f32[1, 4, 8, 4]"
  t183 = prims.mul(t161, t182)  # t183: "cpu f32[1, 4, 8, 4] requires_grad"
  t184 = prims.slice(t181, start_indices=[0, 0, 0, 0], end_indices=[1, 4, 8, 2], strides=[1, 1, 1, 1])  # t184: "cpu f32[1, 4, 8, 2] requires_grad"
  t185 = prims.slice(t181, start_indices=[0, 0, 0, 2], end_indices=[1, 4, 8, 4], strides=[1, 1, 1, 1])  # t185: "cpu f32[1, 4, 8, 2] requires_grad"
  t186 = prims.neg(t184)  # t186: "cpu f32[1, 4, 8, 2] requires_grad"
  t187 = prims.pad(t186, padding_value=0.0, padding_config=[[0, 0, 0], [0, 0, 0], [0, 0, 0], [2, 0, 0]])  # t187: "cpu f32[1, 4, 8, 4] requires_grad"
  t188 = prims.add(t183, t187)  # t188: "cpu f32[1, 4, 8, 4] requires_grad"
  t189 = prims.pad(t185, padding_value=0.0, padding_config=[[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 2, 0]])  # t189: "cpu f32[1, 4, 8, 4] requires_grad"
  t190 = prims.add(t188, t189)  # t190: "cpu f32[1, 4, 8, 4] requires_grad"
  t191 = prims.transpose(t168, permutation=[0, 2, 1, 3])  # t191: "cpu f32[1, 8, 2, 4] requires_grad"
  t192 = prims.reshape(t191, shape=[1, 8, 8])  # t192: "cpu f32[1, 8, 8] requires_grad"
  t193 = prims.transpose(t179, permutation=[0, 2, 1, 3])  # t193: "cpu f32[1, 8, 2, 4] requires_grad"
  t194 = prims.reshape(t193, shape=[1, 8, 8])  # t194: "cpu f32[1, 8, 8] requires_grad"
  t195 = prims.transpose(t190, permutation=[0, 2, 1, 3])  # t195: "cpu f32[1, 8, 4, 4] requires_grad"
  t196 = prims.reshape(t195, shape=[1, 8, 16])  # t196: "cpu f32[1, 8, 16] requires_grad"
  t197 = prims.pad(t192, padding_value=0.0, padding_config=[[0, 0, 0], [0, 0, 0], [24, 0, 0]])  # t197: "cpu f32[1, 8, 32] requires_grad"
  t198 = prims.pad(t194, padding_value=0.0, padding_config=[[0, 0, 0], [0, 0, 0], [16, 8, 0]])  # t198: "cpu f32[1, 8, 32] requires_grad"
  t199 = prims.add(t197, t198)  # t199: "cpu f32[1, 8, 32] requires_grad"
  t200 = prims.pad(t196, padding_value=0.0, padding_config=[[0, 0, 0], [0, 0, 0], [0, 16, 0]])  # t200: "cpu f32[1, 8, 32] requires_grad"
  t201 = prims.add(t199, t200)  # t201: "cpu f32[1, 8, 32] requires_grad"
  t202 = prims.reshape(t201, shape=[1, 8, 32])  # t202: "cpu f32[1, 8, 32] requires_grad"
  t203 = dist.wait(t78)  # t203: "cpu f32[546]"
  t204 = ltorch.reshape(t203, shape=[3, 182])  # t204: "cpu f32[3, 182]"
    # t204 = prims.reshape(t203, shape=[3, 182])
  t205 = ltorch.narrow(t204, dim=1, start=0, length=176)  # t205: "cpu f32[3, 176]"
    # t205 = prims.slice(t204, start_indices=[0, 0], end_indices=[3, 176], strides=[1, 1])
  t206 = ltorch.reshape(t205, shape=[33, 16])  # t206: "cpu f32[33, 16]"
    # t206 = prims.reshape(t205, shape=[33, 16])
  t207 = ltorch.narrow(t206, dim=0, start=0, length=32)  # t207: "cpu f32[32, 16]"
    # t207 = prims.slice(t206, start_indices=[0, 0], end_indices=[32, 16], strides=[1, 1])
  t208 = ltorch.narrow(t204, dim=1, start=176, length=6)  # t208: "cpu f32[3, 6]"
    # t208 = prims.slice(t204, start_indices=[0, 176], end_indices=[3, 182], strides=[1, 1])
  t209 = ltorch.reshape(t208, shape=[18])  # t209: "cpu f32[18]"
    # t209 = prims.reshape(t208, shape=[18])
  t210 = ltorch.narrow(t209, dim=0, start=0, length=16)  # t210: "cpu f32[16]"
    # t210 = prims.slice(t209, start_indices=[0], end_indices=[16], strides=[1])
  t211 = prims.matmul(t202, t207)  # t211: "cpu f32[1, 8, 16] requires_grad"
  t212 = prims.reshape(t202, shape=[8, 32])  # t212: "cpu f32[8, 32] requires_grad"
  t213 = prims.transpose(t212, permutation=[1, 0])  # t213: "cpu f32[32, 8] requires_grad"
  t222 = ltorch.rms_norm(x, t210, normalized_shape=[16], eps=1e-5)  # t222: "cpu f32[1, 8, 16]"
    # t214 = prims.mul(x, x)
    # t215 = prims.sum(t214, dims=[2])
    # t216 = prims.div(t215, 16.0)
    # t217 = prims.add(t216, 1e-5)
    # t218 = prims.rsqrt(t217)
    # t219 = prims.broadcast_in_dim(t218, shape=[1, 8, 16], broadcast_dimensions=[0, 1])
    # t220 = prims.mul(x, t219)
    # t221 = prims.broadcast_in_dim(t210, shape=[1, 8, 16], broadcast_dimensions=[2])
    # t222 = prims.mul(t220, t221)
  t223 = prims.reshape(t222, shape=[8, 16])  # t223: "cpu f32[8, 16]"
  t224 = prims.matmul(t213, t223)  # t224: "cpu f32[32, 16] requires_grad"
  t225 = prims.reshape(t224, shape=[32, 16])  # t225: "cpu f32[32, 16] requires_grad"
  t226 = prims.mul(t211, x)  # t226: "cpu f32[1, 8, 16] requires_grad"
  t227 = prims.mul(x, x)  # t227: "cpu f32[1, 8, 16]"
  t228 = prims.sum(t227, dims=[2])  # t228: "cpu f32[1, 8]"
  t229 = prims.div(t228, 16.0)  # t229: "cpu f32[1, 8]"
  t230 = prims.add(t229, 1e-5)  # t230: "cpu f32[1, 8]"
  t231 = prims.rsqrt(t230)  # t231: "cpu f32[1, 8]"
  t232 = prims.broadcast_in_dim(t231, shape=[1, 8, 16], broadcast_dimensions=[0, 1])  # t232: "cpu f32[1, 8, 16]"
  t233 = prims.mul(t226, t232)  # t233: "cpu f32[1, 8, 16] requires_grad"
  t234 = prims.sum(t233, dims=[0, 1])  # t234: "cpu f32[16] requires_grad"
  t235 = ltorch.zeros(shape=[2, 16], dtype=dtypes.float32, device="cpu")  # t235: "cpu f32[2, 16]"
    # t235 = prims.full(shape=[2, 16], fill_value=0, device="cpu", dtype=dtypes.float32)
  t236 = ltorch.cat([t126, t235], dim=0)  # t236: "cpu f32[18, 16] requires_grad"
    # t236 = prims.cat([t126, t235], dim=0)
  t237 = ltorch.reshape(t236, shape=[3, 96])  # t237: "cpu f32[3, 96] requires_grad"
    # t237 = prims.reshape(t236, shape=[3, 96])
  t238 = ltorch.zeros(shape=[1, 16], dtype=dtypes.float32, device="cpu")  # t238: "cpu f32[1, 16]"
    # t238 = prims.full(shape=[1, 16], fill_value=0, device="cpu", dtype=dtypes.float32)
  t239 = ltorch.cat([t225, t238], dim=0)  # t239: "cpu f32[33, 16] requires_grad"
    # t239 = prims.cat([t225, t238], dim=0)
  t240 = ltorch.reshape(t239, shape=[3, 176])  # t240: "cpu f32[3, 176] requires_grad"
    # t240 = prims.reshape(t239, shape=[3, 176])
  t241 = ltorch.zeros(shape=[2], dtype=dtypes.float32, device="cpu")  # t241: "cpu f32[2]"
    # t241 = prims.full(shape=[2], fill_value=0, device="cpu", dtype=dtypes.float32)
  t242 = ltorch.cat([t234, t241], dim=0)  # t242: "cpu f32[18] requires_grad"
    # t242 = prims.cat([t234, t241], dim=0)
  t243 = ltorch.reshape(t242, shape=[3, 6])  # t243: "cpu f32[3, 6] requires_grad"
    # t243 = prims.reshape(t242, shape=[3, 6])
  t244 = ltorch.cat([t237, t240, t243], dim=1)  # t244: "cpu f32[3, 278] requires_grad"
    # t244 = prims.cat([t237, t240, t243], dim=1)
  t245 = ltorch.reshape(t244, shape=[-1])  # t245: "cpu f32[834] requires_grad"
    # t245 = prims.reshape(t244, shape=[834])
  t246 = dist.reduce_scatter(t245, op="avg", world_size=3, async_op=True)  # t246: "cpu f32[278] requires_grad"
  t247 = dist.wait(t30)  # t247: "cpu f32[288] requires_grad"
  t248 = ltorch.reshape(t247, shape=[6, 48])  # t248: "cpu f32[6, 48] requires_grad"
    # t248 = prims.reshape(t247, shape=[6, 48])
  t249 = dist.wait(t74)  # t249: "cpu f32[256] requires_grad"
  t250 = ltorch.reshape(t249, shape=[16, 16])  # t250: "cpu f32[16, 16] requires_grad"
    # t250 = prims.reshape(t249, shape=[16, 16])
  t251 = dist.wait(t119)  # t251: "cpu f32[262] requires_grad"
  t252 = ltorch.narrow(t251, dim=0, start=0, length=256)  # t252: "cpu f32[256] requires_grad"
    # t252 = prims.slice(t251, start_indices=[0], end_indices=[256], strides=[1])
  t253 = ltorch.reshape(t252, shape=[16, 16])  # t253: "cpu f32[16, 16] requires_grad"
    # t253 = prims.reshape(t252, shape=[16, 16])
  t254 = ltorch.narrow(t251, dim=0, start=256, length=6)  # t254: "cpu f32[6] requires_grad"
    # t254 = prims.slice(t251, start_indices=[256], end_indices=[262], strides=[1])
  t255 = dist.wait(t246)  # t255: "cpu f32[278] requires_grad"
  t256 = ltorch.narrow(t255, dim=0, start=0, length=96)  # t256: "cpu f32[96] requires_grad"
    # t256 = prims.slice(t255, start_indices=[0], end_indices=[96], strides=[1])
  t257 = ltorch.reshape(t256, shape=[6, 16])  # t257: "cpu f32[6, 16] requires_grad"
    # t257 = prims.reshape(t256, shape=[6, 16])
  t258 = ltorch.narrow(t255, dim=0, start=96, length=176)  # t258: "cpu f32[176] requires_grad"
    # t258 = prims.slice(t255, start_indices=[96], end_indices=[272], strides=[1])
  t259 = ltorch.reshape(t258, shape=[11, 16])  # t259: "cpu f32[11, 16] requires_grad"
    # t259 = prims.reshape(t258, shape=[11, 16])
  t260 = ltorch.narrow(t255, dim=0, start=272, length=6)  # t260: "cpu f32[6] requires_grad"
    # t260 = prims.slice(t255, start_indices=[272], end_indices=[278], strides=[1])
  return (t260, t254, t259, t257, t253, t250, t248)
