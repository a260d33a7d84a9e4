# Printed by thunder-rs (thunder-ir 0.1.0)
import thunder.core.prims as prims
import thunder.torch as ltorch
from thunder.core import dtypes
import thunder.distributed.prims as dist

def block_loss_backward_fsdp(bucket3_shard, t72, t73, bucket2_shard, t62, bucket0_shard, bucket1_shard, t142, t27, t36, t18, sin, cos, x, ct_t83):
  # bucket3_shard: "cpu f32[256]"
  # t72: "cpu f32[1, 8, 48] requires_grad"
  # t73: "cpu f32[1, 8, 48] requires_grad"
  # bucket2_shard: "cpu f32[256]"
  # t62: "cpu f32[1, 8, 16] requires_grad"
  # bucket0_shard: "cpu f32[267]"
  # bucket1_shard: "cpu f32[256]"
  # t142: "cpu f32[8, 16] requires_grad"
  # t27: "cpu f32[1, 4, 8, 4] requires_grad"
  # t36: "cpu f32[1, 2, 8, 4] requires_grad"
  # t18: "cpu f32[1, 2, 8, 4] requires_grad"
  # sin: "cpu f32[8, 4]"
  # cos: "cpu f32[8, 4]"
  # x: "cpu f32[1, 8, 16]"
  # ct_t83: "cpu f32[]"
  t0 = dist.all_gather(bucket3_shard, world_size=3, async_op=True)  # t0: "cpu f32[768]"
  t1 = dist.all_gather(bucket2_shard, world_size=3, async_op=True)  # t1: "cpu f32[768]"
  t2 = prims.div(ct_t83, 128.0)  # t2: "cpu f32[]"
  t3 = prims.broadcast_in_dim(t2, shape=[1, 8, 16], broadcast_dimensions=[])  # t3: "cpu f32[1, 8, 16]"
  t4 = prims.reshape(t3, shape=[1, 8, 16])  # t4: "cpu f32[1, 8, 16]"
  t5 = dist.wait(t0)  # t5: "cpu f32[768]"
  t6 = ltorch.reshape(t5, shape=[16, 48])  # t6: "cpu f32[16, 48]"
    # t6 = prims.reshape(t5, shape=[16, 48])
  t7 = prims.matmul(t4, t6)  # t7: "cpu f32[1, 8, 48]"
  t8 = prims.reshape(t4, shape=[8, 16])  # t8: "cpu f32[8, 16]"
  t9 = prims.transpose(t8, permutation=[1, 0])  # t9: "cpu f32[16, 8]"
  t10 = prims.neg(t72)  # t10: "cpu f32[1, 8, 48] requires_grad"
  t11 = prims.exp(t10)  # t11: "cpu f32[1, 8, 48] requires_grad"
  t12 = prims.add(t11, 1.0)  # t12: "cpu f32[1, 8, 48] requires_grad"
  t13 = prims.reciprocal(t12)  # t13: "cpu f32[1, 8, 48] requires_grad"
  t14 = prims.mul(t72, t13)  # t14: "cpu f32[1, 8, 48] requires_grad"
  t15 = prims.mul(t14, t73)  # t15: "cpu f32[1, 8, 48] requires_grad"
  t16 = prims.reshape(t15, shape=[8, 48])  # t16: "cpu f32[8, 48] requires_grad"
  t17 = prims.matmul(t9, t16)  # t17: "cpu f32[16, 48] requires_grad"
  t19 = prims.reshape(t17, shape=[16, 48])  # t19: "cpu f32[16, 48] requires_grad"
  t20 = ltorch.reshape(t19, shape=[-1])  # t20: "cpu f32[768] requires_grad"
    # t20 = prims.reshape(t19, shape=[768])
  t21 = dist.reduce_scatter(t20, op="avg", world_size=3, async_op=True)  # t21: "cpu f32[256] requires_grad"
  t22 = prims.mul(t7, t73)  # t22: "cpu f32[1, 8, 48] requires_grad"
  t23 = prims.mul(t7, t14)  # t23: "cpu f32[1, 8, 48] requires_grad"
  t24 = prims.mul(t22, t13)  # t24: "cpu f32[1, 8, 48] requires_grad"
  t25 = prims.mul(t22, t72)  # t25: "cpu f32[1, 8, 48] requires_grad"
  t26 = prims.mul(t13, t13)  # t26: "cpu f32[1, 8, 48] requires_grad"
  t28 = prims.mul(t25, t26)  # t28: "cpu f32[1, 8, 48] requires_grad"
  t29 = prims.neg(t28)  # t29: "cpu f32[1, 8, 48] requires_grad"
  t30 = prims.mul(t29, t11)  # t30: "cpu f32[1, 8, 48] requires_grad"
  t31 = prims.neg(t30)  # t31: "cpu f32[1, 8, 48] requires_grad"
  t32 = prims.add(t24, t31)  # t32: "cpu f32[1, 8, 48] requires_grad"
  t33 = prims.reshape(t23, shape=[1, 8, 48])  # t33: "cpu f32[1, 8, 48] requires_grad"
  t34 = dist.all_gather(bucket0_shard, world_size=3, async_op=True)  # t34: "cpu f32[801]"
  t35 = dist.wait(t1)  # t35: "cpu f32[768]"
  t37 = ltorch.reshape(t35, shape=[48, 16])  # t37: "cpu f32[48, 16]"
    # t37 = prims.reshape(t35, shape=[48, 16])
  t38 = prims.matmul(t33, t37)  # t38: "cpu f32[1, 8, 16] requires_grad"
  t39 = prims.reshape(t33, shape=[8, 48])  # t39: "cpu f32[8, 48] requires_grad"
  t40 = prims.transpose(t39, permutation=[1, 0])  # t40: "cpu f32[48, 8] requires_grad"
  t41 = dist.all_gather(bucket1_shard, world_size=3, async_op=True)  # t41: "cpu f32[768]"
  t42 = dist.wait(t34)  # t42: "cpu f32[801]"
  t43 = ltorch.narrow(t42, dim=0, start=0, length=16)  # t43: "cpu f32[16]"
    # t43 = prims.slice(t42, start_indices=[0], end_indices=[16], strides=[1])
  t44 = ltorch.narrow(t42, dim=0, start=16, length=512)  # t44: "cpu f32[512]"
    # t44 = prims.slice(t42, start_indices=[16], end_indices=[528], strides=[1])
  t45 = ltorch.reshape(t44, shape=[32, 16])  # t45: "cpu f32[32, 16]"
    # t45 = prims.reshape(t44, shape=[32, 16])
  t46 = ltorch.narrow(t42, dim=0, start=528, length=256)  # t46: "cpu f32[256]"
    # t46 = prims.slice(t42, start_indices=[528], end_indices=[784], strides=[1])
  t47 = ltorch.reshape(t46, shape=[16, 16])  # t47: "cpu f32[16, 16]"
    # t47 = prims.reshape(t46, shape=[16, 16])
  t48 = ltorch.narrow(t42, dim=0, start=784, length=16)  # t48: "cpu f32[16]"
    # t48 = prims.slice(t42, start_indices=[784], end_indices=[800], strides=[1])
  t57 = ltorch.rms_norm(t62, t48, normalized_shape=[16], eps=1e-5)  # t57: "cpu f32[1, 8, 16] requires_grad"
    # t49 = prims.mul(t62, t62)
    # t50 = prims.sum(t49, dims=[2])
    # t51 = prims.div(t50, 16.0)
    # t52 = prims.add(t51, 1e-5)
    # t53 = prims.rsqrt(t52)
    # t54 = prims.broadcast_in_dim(t53, shape=[1, 8, 16], broadcast_dimensions=[0, 1])
    # t55 = prims.mul(t62, t54)
    # t56 = prims.broadcast_in_dim(t48, shape=[1, 8, 16], broadcast_dimensions=[2])
    # t57 = prims.mul(t55, t56)
  t58 = prims.reshape(t57, shape=[8, 16])  # t58: "cpu f32[8, 16] requires_grad"
  t59 = prims.matmul(t40, t58)  # t59: "cpu f32[48, 16] requires_grad"
  t60 = prims.reshape(t59, shape=[48, 16])  # t60: "cpu f32[48, 16] requires_grad"
  t61 = ltorch.reshape(t60, shape=[-1])  # t61: "cpu f32[768] requires_grad"
    # t61 = prims.reshape(t60, shape=[768])
  t63 = dist.reduce_scatter(t61, op="avg", world_size=3, async_op=True)  # t63: "cpu f32[256] requires_grad"
  t64 = prims.reshape(t32, shape=[1, 8, 48])  # t64: "cpu f32[1, 8, 48] requires_grad"
  t65 = dist.wait(t41)  # t65: "cpu f32[768]"
  t66 = ltorch.reshape(t65, shape=[48, 16])  # t66: "cpu f32[48, 16]"
    # t66 = prims.reshape(t65, shape=[48, 16])
  t67 = prims.matmul(t64, t66)  # t67: "cpu f32[1, 8, 16] requires_grad"
  t68 = prims.reshape(t64, shape=[8, 48])  # t68: "cpu f32[8, 48] requires_grad"
  t69 = prims.transpose(t68, permutation=[1, 0])  # t69: "cpu f32[48, 8] requires_grad"
  t70 = prims.reshape(t57, shape=[8, 16])  # t70: "cpu f32[8, 16] requires_grad"
  t71 = prims.matmul(t69, t70)  # t71: "cpu f32[48, 16] requires_grad"
  t74 = prims.reshape(t71, shape=[48, 16])  # t74: "cpu f32[48, 16] requires_grad"
  t75 = ltorch.reshape(t74, shape=[-1])  # t75: "cpu f32[768] requires_grad"
    # t75 = prims.reshape(t74, shape=[768])
  t76 = dist.reduce_scatter(t75, op="avg", world_size=3, async_op=True)  # t76: "cpu f32[256] requires_grad"
  t77 = dist.wait(t21)  # t77: "cpu f32[256] requires_grad"
  t78 = prims.add(t38, t67)  # t78: "cpu f32[1, 8, 16] requires_grad"
  t79 = prims.broadcast_in_dim(t48, shape=[1, 8, 16], broadcast_dimensions=[2])  # t79: "cpu f32[1, 8, 16]"
  t80 = prims.mul(t78, t79)  # t80: "cpu f32[1, 8, 16] requires_grad"
  t81 = prims.mul(t80, t62)  # t81: "cpu f32[1, 8, 16] requires_grad"
  t82 = prims.sum(t81, dims=[2])  # t82: "cpu f32[1, 8] requires_grad"
  t83 = prims.div(t82, 16.0)  # t83: "cpu f32[1, 8] requires_grad"
  t84 = prims.mul(t62, t62)  # t84: "cpu f32[1, 8, 16] requires_grad"
  t85 = prims.sum(t84, dims=[2])  # t85: "cpu f32[1, 8] requires_grad"
  t86 = prims.div(t85, 16.0)  # t86: "cpu f32[1, 8] requires_grad"
  t87 = prims.add(t86, 1e-5)  # t87: "cpu f32[1, 8] requires_grad"
  t88 = prims.rsqrt(t87)  # t88: "cpu f32[1, 8] requires_grad"
  t89 = prims.mul(t88, t88)  # t89: "cpu f32[1, 8] requires_grad"
  t90 = prims.mul(t83, t89)  # t90: "cpu f32[1, 8] requires_grad"
  t91 = prims.broadcast_in_dim(t90, shape=[1, 8, 16], broadcast_dimensions=[0, 1])  # t91: "cpu f32[1, 8, 16] requires_grad"
  t92 = prims.mul(t62, t91)  # t92: "cpu f32[1, 8, 16] requires_grad"
  t93 = prims.sub(t80, t92)  # t93: "cpu f32[1, 8, 16] requires_grad"
  t94 = prims.broadcast_in_dim(t88, shape=[1, 8, 16], broadcast_dimensions=[0, 1])  # t94: "cpu f32[1, 8, 16] requires_grad"
  t95 = prims.mul(t93, t94)  # t95: "cpu f32[1, 8, 16] requires_grad"
  t96 = prims.mul(t78, t62)  # t96: "cpu f32[1, 8, 16] requires_grad"
  t97 = prims.mul(t96, t94)  # t97: "cpu f32[1, 8, 16] requires_grad"
  t98 = prims.sum(t97, dims=[0, 1])  # t98: "cpu f32[16] requires_grad"
  t99 = prims.add(t3, t95)  # t99: "cpu f32[1, 8, 16] requires_grad"
  t100 = prims.reshape(t99, shape=[1, 8, 16])  # t100: "cpu f32[1, 8, 16] requires_grad"
  t101 = prims.matmul(t100, t47)  # t101: "cpu f32[1, 8, 16] requires_grad"
  t102 = prims.reshape(t100, shape=[8, 16])  # t102: "cpu f32[8, 16] requires_grad"
  t103 = prims.transpose(t102, permutation=[1, 0])  # t103: "cpu f32[16, 8] requires_grad"
  t104 = prims.matmul(t103, t142)  # t104: "cpu f32[16, 16] requires_grad"
  t105 = prims.reshape(t104, shape=[16, 16])  # t105: "cpu f32[16, 16] requires_grad"
  t106 = prims.reshape(t101, shape=[1, 8, 4, 4])  # t106: "cpu f32[1, 8, 4, 4] requires_grad"
  t107 = prims.transpose(t106, permutation=[0, 2, 1, 3])  # t107: "cpu f32[1, 4, 8, 4] requires_grad"
  t139, t145, t147 = ltorch.scaled_dot_product_attention_backward(t107, t27, t36, t18, None, is_causal=True, scale=None, enable_gqa=True)  # t139: "cpu f32[1, 4, 8, 4] requires_grad", t145: "cpu f32[1, 2, 8, 4] requires_grad", t147: "cpu f32[1, 2, 8, 4] requires_grad"
    # t108 = prims.broadcast_in_dim(t36, shape=[1, 2, 2, 8, 4], broadcast_dimensions=[0, 1, 3, 4])
    # t109 = prims.reshape(t108, shape=[1, 4, 8, 4])
    # t110 = prims.broadcast_in_dim(t18, shape=[1, 2, 2, 8, 4], broadcast_dimensions=[0, 1, 3, 4])
    # t111 = prims.reshape(t110, shape=[1, 4, 8, 4])
    # t112 = prims.transpose(t109, permutation=[0, 1, 3, 2])
    # t113 = prims.matmul(t27, t112)
    # t114 = prims.mul(t113, 0.5)
    # t115 = prims.iota(length=8, start=0, step=1, device="cpu", dtype=dtypes.int64)
    # t116 = prims.iota(length=8, start=0, step=1, device="cpu", dtype=dtypes.int64)
    # t117 = prims.broadcast_in_dim(t115, shape=[8, 8], broadcast_dimensions=[0])
    # t118 = prims.broadcast_in_dim(t116, shape=[8, 8], broadcast_dimensions=[1])
    # t119 = prims.ge(t117, t118)
    # t120 = prims.broadcast_in_dim(t119, shape=[1, 4, 8, 8], broadcast_dimensions=[2, 3])
    # t121 = prims.where(t120, t114, -float('inf'))
    # t128 = ltorch.softmax(t121, dim=-1, dtype=None)
      # t122 = prims.amax(t121, dims=[3])
      # t123 = prims.broadcast_in_dim(t122, shape=[1, 4, 8, 8], broadcast_dimensions=[0, 1, 2])
      # t124 = prims.sub(t121, t123)
      # t125 = prims.exp(t124)
      # t126 = prims.sum(t125, dims=[3])
      # t127 = prims.broadcast_in_dim(t126, shape=[1, 4, 8, 8], broadcast_dimensions=[0, 1, 2])
      # t128 = prims.div(t125, t127)
    # t129 = prims.transpose(t128, permutation=[0, 1, 3, 2])
    # t130 = prims.matmul(t129, t107)
    # t131 = prims.transpose(t111, permutation=[0, 1, 3, 2])
    # t132 = prims.matmul(t107, t131)
    # t133 = prims.mul(t128, t132)
    # t134 = prims.sum(t133, dims=[3])
    # t135 = prims.broadcast_in_dim(t134, shape=[1, 4, 8, 8], broadcast_dimensions=[0, 1, 2])
    # t136 = prims.sub(t132, t135)
    # t137 = prims.mul(t128, t136)
    # t138 = prims.matmul(t137, t109)
    # t139 = prims.mul(t138, 0.5)
    # t140 = prims.transpose(t137, permutation=[0, 1, 3, 2])
    # t141 = prims.matmul(t140, t27)
    # t143 = prims.mul(t141, 0.5)
    # t144 = prims.reshape(t143, shape=[1, 2, 2, 8, 4])
    # t145 = prims.sum(t144, dims=[2])
    # t146 = prims.reshape(t130, shape=[1, 2, 2, 8, 4])
    # t147 = prims.sum(t146, dims=[2])
  t148 = prims.broadcast_in_dim(sin, shape=[1, 2, 8, 4], broadcast_dimensions=[2, 3])  # t148: "cpu f32[1, 2, 8, 4]"
  t149 = prims.mul(t145, t148)  # t149: "cpu f32[1, 2, 8, 4] requires_grad"
  t150 = prims.broadcast_in_dim(cos, shape=[1, 2, 8, 4], broadcast_dimensions=[2, 3])  # t150: "cpu f32[1, 2, 8, 4]"
  t151 = prims.mul(t145, t150)  # t151: "cpu f32[1, 2, 8, 4] requires_grad"
  t152 = prims.slice(t149, start_indices=[0, 0, 0, 0], end_indices=[1, 2, 8, 2], strides=[1, 1, 1, 1])  # t152: "cpu f32[1, 2, 8, 2] requires_grad"
  t153 = prims.slice(t149, start_indices=[0, 0, 0, 2], end_indices=[1, 2, 8, 4], strides=[1, 1, 1, 1])  # t153: "cpu f32[1, 2, 8, 2] requires_grad"
  t154 = prims.neg(t152)  # t154: "cpu f32[1, 2, 8, 2] requires_grad"
  t155 = prims.pad(t154, padding_value=0.0, padding_config=[[0, 0, 0], [0, 0, 0], [0, 0, 0], [2, 0, 0]])  # t155: "cpu f32[1, 2, 8, 4] requires_grad"
  t156 = prims.add(t151, t155)  # t156: "cpu f32[1, 2, 8, 4] requires_grad"
  t157 = prims.pad(t153, padding_value=0.0, padding_config=[[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 2, 0]])  # t157: "cpu f32[1, 2, 8, 4] requires_grad"
  t158 = prims.add(t156, t157)  # t158: "cpu f32[1, 2, 8, 4] requires_grad"
  t159 = prims.broadcast_in_dim(sin, shape=[1, 4, 8, 4], broadcast_dimensions=[2, 3])  # t159: "cpu f32[1, 4, 8, 4]"
  t160 = prims.mul(t139, t159)  # t160: "cpu f32[1, 4, 8, 4] requires_grad"
  t161 = prims.broadcast_in_dim(cos, shape=[1, 4, 8, 4], broadcast_dimensions=[2, 3])  # t161: "cpu f32[1, 4, 8, 4]"
  t162 = prims.mul(t139, t161)  # t162: "cpu f32[1, 4, 8, 4] requires_grad"
  t163 = prims.slice(t160, start_indices=[0, 0, 0, 0], end_indices=[1, 4, 8, 2], strides=[1, 1, 1, 1])  # t163: "cpu f32[1, 4, 8, 2] requires_grad"
  t164 = prims.slice(t160, start_indices=[0, 0, 0, 2], end_indices=[1, 4, 8, 4], strides=[1, 1, 1, 1])  # t164: "cpu f32[1, 4, 8, 2] requires_grad"
  t165 = prims.neg(t163)  # t165: "cpu f32[1, 4, 8, 2] requires_grad"
  t166 = prims.pad(t165, padding_value=0.0, padding_config=[[0, 0, 0], [0, 0, 0], [0, 0, 0], [2, 0, 0]])  # t166: "cpu f32[1, 4, 8, 4] requires_grad"
  t167 = prims.add(t162, t166)  # t167: "cpu f32[1, 4, 8, 4] requires_grad"
  t168 = prims.pad(t164, padding_value=0.0, padding_config=[[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 2, 0]])  # t168: "cpu f32[1, 4, 8, 4] requires_grad"
  t169 = prims.add(t167, t168)  # t169: "cpu f32[1, 4, 8, 4] requires_grad"
  t170 = prims.transpose(t147, permutation=[0, 2, 1, 3])  # t170: "cpu f32[1, 8, 2, 4] requires_grad"
  t171 = prims.reshape(t170, shape=[1, 8, 8])  # t171: "cpu f32[1, 8, 8] requires_grad"
  t172 = prims.transpose(t158, permutation=[0, 2, 1, 3])  # t172: "cpu f32[1, 8, 2, 4] requires_grad"
  t173 = prims.reshape(t172, shape=[1, 8, 8])  # t173: "cpu f32[1, 8, 8] requires_grad"
  t174 = prims.transpose(t169, permutation=[0, 2, 1, 3])  # t174: "cpu f32[1, 8, 4, 4] requires_grad"
  t175 = prims.reshape(t174, shape=[1, 8, 16])  # t175: "cpu f32[1, 8, 16] requires_grad"
  t176 = prims.pad(t171, padding_value=0.0, padding_config=[[0, 0, 0], [0, 0, 0], [24, 0, 0]])  # t176: "cpu f32[1, 8, 32] requires_grad"
  t177 = prims.pad(t173, padding_value=0.0, padding_config=[[0, 0, 0], [0, 0, 0], [16, 8, 0]])  # t177: "cpu f32[1, 8, 32] requires_grad"
  t178 = prims.add(t176, t177)  # t178: "cpu f32[1, 8, 32] requires_grad"
  t179 = prims.pad(t175, padding_value=0.0, padding_config=[[0, 0, 0], [0, 0, 0], [0, 16, 0]])  # t179: "cpu f32[1, 8, 32] requires_grad"
  t180 = prims.add(t178, t179)  # t180: "cpu f32[1, 8, 32] requires_grad"
  t181 = prims.reshape(t180, shape=[1, 8, 32])  # t181: "cpu f32[1, 8, 32] requires_grad"
  t182 = prims.matmul(t181, t45)  # t182: "cpu f32[1, 8, 16] requires_grad"
  t183 = prims.reshape(t181, shape=[8, 32])  # t183: "cpu f32[8, 32] requires_grad"
  t184 = prims.transpose(t183, permutation=[1, 0])  # t184: "cpu f32[32, 8] requires_grad"
  t193 = ltorch.rms_norm(x, t43, normalized_shape=[16], eps=1e-5)  # t193: "cpu f32[1, 8, 16]"
    # t185 = prims.mul(x, x)
    # t186 = prims.sum(t185, dims=[2])
    # t187 = prims.div(t186, 16.0)
    # t188 = prims.add(t187, 1e-5)
    # t189 = prims.rsqrt(t188)
    # t190 = prims.broadcast_in_dim(t189, shape=[1, 8, 16], broadcast_dimensions=[0, 1])
    # t191 = prims.mul(x, t190)
    # t192 = prims.broadcast_in_dim(t43, shape=[1, 8, 16], broadcast_dimensions=[2])
    # t193 = prims.mul(t191, t192)
  t194 = prims.reshape(t193, shape=[8, 16])  # t194: "cpu f32[8, 16]"
  t195 = prims.matmul(t184, t194)  # t195: "cpu f32[32, 16] requires_grad"
  t196 = prims.reshape(t195, shape=[32, 16])  # t196: "cpu f32[32, 16] requires_grad"
  t197 = prims.mul(t182, x)  # t197: "cpu f32[1, 8, 16] requires_grad"
  t198 = prims.mul(x, x)  # t198: "cpu f32[1, 8, 16]"
  t199 = prims.sum(t198, dims=[2])  # t199: "cpu f32[1, 8]"
  t200 = prims.div(t199, 16.0)  # t200: "cpu f32[1, 8]"
  t201 = prims.add(t200, 1e-5)  # t201: "cpu f32[1, 8]"
  t202 = prims.rsqrt(t201)  # t202: "cpu f32[1, 8]"
  t203 = prims.broadcast_in_dim(t202, shape=[1, 8, 16], broadcast_dimensions=[0, 1])  # t203: "cpu f32[1, 8, 16]"
  t204 = prims.mul(t197, t203)  # t204: "cpu f32[1, 8, 16] requires_grad"
  t205 = prims.sum(t204, dims=[0, 1])  # t205: "cpu f32[16] requires_grad"
  t206 = ltorch.reshape(t196, shape=[-1])  # t206: "cpu f32[512] requires_grad"
    # t206 = prims.reshape(t196, shape=[512])
  t207 = ltorch.reshape(t105, shape=[-1])  # t207: "cpu f32[256] requires_grad"
    # t207 = prims.reshape(t105, shape=[256])
  t208 = ltorch.zeros(shape=[1], dtype=dtypes.float32, device="cpu")  # t208: "cpu f32[1]"
    # t208 = prims.full(shape=[1], fill_value=0, device="cpu", dtype=dtypes.float32)
  t209 = ltorch.cat([t205, t206, t207, t98, t208], dim=0)  # t209: "cpu f32[801] requires_grad"
    # t209 = prims.cat([t205, t206, t207, t98, t208], dim=0)
  t210 = dist.reduce_scatter(t209, op="avg", world_size=3, async_op=True)  # t210: "cpu f32[267] requires_grad"
  t211 = dist.wait(t63)  # t211: "cpu f32[256] requires_grad"
  t212 = dist.wait(t76)  # t212: "cpu f32[256] requires_grad"
  t213 = dist.wait(t210)  # t213: "cpu f32[267] requires_grad"
  return (t213, t212, t211, t77)
