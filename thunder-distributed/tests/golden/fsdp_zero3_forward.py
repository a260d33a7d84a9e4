# Printed by thunder-rs (thunder-ir 0.1.0)
import thunder.core.prims as prims
import thunder.torch as ltorch
from thunder.core import dtypes
import thunder.distributed.prims as dist

def block_loss_forward_fsdp(x, cos, sin, norm_1_weight_shard, norm_2_weight_shard, attn_weight_shard, attn_proj_weight_shard, fc_1_weight_shard, fc_2_weight_shard, proj_weight_shard):
  # x: "cpu f32[1, 8, 16]"
  # cos: "cpu f32[8, 4]"
  # sin: "cpu f32[8, 4]"
  # norm_1_weight_shard: "cpu f32[6] requires_grad"
  # norm_2_weight_shard: "cpu f32[6] requires_grad"
  # attn_weight_shard: "cpu f32[11, 16] requires_grad"
  # attn_proj_weight_shard: "cpu f32[6, 16] requires_grad"
  # fc_1_weight_shard: "cpu f32[16, 16] requires_grad"
  # fc_2_weight_shard: "cpu f32[16, 16] requires_grad"
  # proj_weight_shard: "cpu f32[6, 48] requires_grad"
  t0 = ltorch.reshape(attn_weight_shard, shape=[-1])  # t0: "cpu f32[176] requires_grad"
    # t0 = prims.reshape(attn_weight_shard, shape=[176])
  t1 = ltorch.reshape(attn_proj_weight_shard, shape=[-1])  # t1: "cpu f32[96] requires_grad"
    # t1 = prims.reshape(attn_proj_weight_shard, shape=[96])
  t2 = ltorch.cat([norm_1_weight_shard, t0, t1, norm_2_weight_shard], dim=0)  # t2: "cpu f32[284] requires_grad"
    # t2 = prims.cat([norm_1_weight_shard, t0, t1, norm_2_weight_shard], dim=0)
  t3 = dist.all_gather(t2, world_size=3, async_op=True)  # t3: "cpu f32[852] requires_grad"
  t4 = ltorch.reshape(fc_1_weight_shard, shape=[-1])  # t4: "cpu f32[256] requires_grad"
    # t4 = prims.reshape(fc_1_weight_shard, shape=[256])
  t5 = dist.all_gather(t4, world_size=3, async_op=True)  # t5: "cpu f32[768] requires_grad"
  t6 = dist.wait(t3)  # t6: "cpu f32[852] requires_grad"
  t7 = ltorch.reshape(t6, shape=[3, 284])  # t7: "cpu f32[3, 284] requires_grad"
    # t7 = prims.reshape(t6, shape=[3, 284])
  t8 = ltorch.narrow(t7, dim=1, start=0, length=6)  # t8: "cpu f32[3, 6] requires_grad"
    # t8 = prims.slice(t7, start_indices=[0, 0], end_indices=[3, 6], strides=[1, 1])
  t9 = ltorch.reshape(t8, shape=[18])  # t9: "cpu f32[18] requires_grad"
    # t9 = prims.reshape(t8, shape=[18])
  t10 = ltorch.narrow(t9, dim=0, start=0, length=16)  # t10: "cpu f32[16] requires_grad"
    # t10 = prims.slice(t9, start_indices=[0], end_indices=[16], strides=[1])
  t11 = ltorch.narrow(t7, dim=1, start=6, length=176)  # t11: "cpu f32[3, 176] requires_grad"
    # t11 = prims.slice(t7, start_indices=[0, 6], end_indices=[3, 182], strides=[1, 1])
  t12 = ltorch.reshape(t11, shape=[33, 16])  # t12: "cpu f32[33, 16] requires_grad"
    # t12 = prims.reshape(t11, shape=[33, 16])
  t13 = ltorch.narrow(t12, dim=0, start=0, length=32)  # t13: "cpu f32[32, 16] requires_grad"
    # t13 = prims.slice(t12, start_indices=[0, 0], end_indices=[32, 16], strides=[1, 1])
  t14 = ltorch.narrow(t7, dim=1, start=182, length=96)  # t14: "cpu f32[3, 96] requires_grad"
    # t14 = prims.slice(t7, start_indices=[0, 182], end_indices=[3, 278], strides=[1, 1])
  t15 = ltorch.reshape(t14, shape=[18, 16])  # t15: "cpu f32[18, 16] requires_grad"
    # t15 = prims.reshape(t14, shape=[18, 16])
  t16 = ltorch.narrow(t15, dim=0, start=0, length=16)  # t16: "cpu f32[16, 16] requires_grad"
    # t16 = prims.slice(t15, start_indices=[0, 0], end_indices=[16, 16], strides=[1, 1])
  t17 = ltorch.narrow(t7, dim=1, start=278, length=6)  # t17: "cpu f32[3, 6] requires_grad"
    # t17 = prims.slice(t7, start_indices=[0, 278], end_indices=[3, 284], strides=[1, 1])
  t18 = ltorch.reshape(t17, shape=[18])  # t18: "cpu f32[18] requires_grad"
    # t18 = prims.reshape(t17, shape=[18])
  t19 = ltorch.narrow(t18, dim=0, start=0, length=16)  # t19: "cpu f32[16] requires_grad"
    # t19 = prims.slice(t18, start_indices=[0], end_indices=[16], strides=[1])
  t28 = ltorch.rms_norm(x, t10, normalized_shape=[16], eps=1e-5)  # t28: "cpu f32[1, 8, 16] requires_grad"
    # t20 = prims.mul(x, x)
    # t21 = prims.sum(t20, dims=[2])
    # t22 = prims.div(t21, 16.0)
    # t23 = prims.add(t22, 1e-5)
    # t24 = prims.rsqrt(t23)
    # t25 = prims.broadcast_in_dim(t24, shape=[1, 8, 16], broadcast_dimensions=[0, 1])
    # t26 = prims.mul(x, t25)
    # t27 = prims.broadcast_in_dim(t10, shape=[1, 8, 16], broadcast_dimensions=[2])
    # t28 = prims.mul(t26, t27)
  t29 = prims.linear(t28, t13, None)  # t29: "cpu f32[1, 8, 32] requires_grad"
  t30 = prims.slice(t29, start_indices=[0, 0, 0], end_indices=[1, 8, 16], strides=[1, 1, 1])  # t30: "cpu f32[1, 8, 16] requires_grad"
  t31 = prims.slice(t29, start_indices=[0, 0, 16], end_indices=[1, 8, 24], strides=[1, 1, 1])  # t31: "cpu f32[1, 8, 8] requires_grad"
  t32 = prims.slice(t29, start_indices=[0, 0, 24], end_indices=[1, 8, 32], strides=[1, 1, 1])  # t32: "cpu f32[1, 8, 8] requires_grad"
  t33 = prims.reshape(t30, shape=[1, 8, 4, 4])  # t33: "cpu f32[1, 8, 4, 4] requires_grad"
  t34 = prims.transpose(t33, permutation=[0, 2, 1, 3])  # t34: "cpu f32[1, 4, 8, 4] requires_grad"
  t35 = prims.reshape(t31, shape=[1, 8, 2, 4])  # t35: "cpu f32[1, 8, 2, 4] requires_grad"
  t36 = prims.transpose(t35, permutation=[0, 2, 1, 3])  # t36: "cpu f32[1, 2, 8, 4] requires_grad"
  t37 = prims.reshape(t32, shape=[1, 8, 2, 4])  # t37: "cpu f32[1, 8, 2, 4] requires_grad"
  t38 = prims.transpose(t37, permutation=[0, 2, 1, 3])  # t38: "cpu f32[1, 2, 8, 4] requires_grad"
  t39 = prims.slice(t34, start_indices=[0, 0, 0, 0], end_indices=[1, 4, 8, 2], strides=[1, 1, 1, 1])  # t39: "cpu f32[1, 4, 8, 2] requires_grad"
  t40 = prims.slice(t34, start_indices=[0, 0, 0, 2], end_indices=[1, 4, 8, 4], strides=[1, 1, 1, 1])  # t40: "cpu f32[1, 4, 8, 2] requires_grad"
  t41 = prims.neg(t40)  # t41: "cpu f32[1, 4, 8, 2] requires_grad"
  t42 = prims.cat([t41, t39], dim=-1)  # t42: "cpu f32[1, 4, 8, 4] requires_grad"
  t43 = prims.broadcast_in_dim(cos, shape=[1, 4, 8, 4], broadcast_dimensions=[2, 3])  # t43: "cpu f32[1, 4, 8, 4]"
  t44 = prims.mul(t34, t43)  # t44: "cpu f32[1, 4, 8, 4] requires_grad"
  t45 = prims.broadcast_in_dim(sin, shape=[1, 4, 8, 4], broadcast_dimensions=[2, 3])  # t45: "cpu f32[1, 4, 8, 4]"
  t46 = prims.mul(t42, t45)  # t46: "cpu f32[1, 4, 8, 4] requires_grad"
  t47 = prims.add(t44, t46)  # t47: "cpu f32[1, 4, 8, 4] requires_grad"
  t48 = prims.slice(t36, start_indices=[0, 0, 0, 0], end_indices=[1, 2, 8, 2], strides=[1, 1, 1, 1])  # t48: "cpu f32[1, 2, 8, 2] requires_grad"
  t49 = prims.slice(t36, start_indices=[0, 0, 0, 2], end_indices=[1, 2, 8, 4], strides=[1, 1, 1, 1])  # t49: "cpu f32[1, 2, 8, 2] requires_grad"
  t50 = prims.neg(t49)  # t50: "cpu f32[1, 2, 8, 2] requires_grad"
  t51 = prims.cat([t50, t48], dim=-1)  # t51: "cpu f32[1, 2, 8, 4] requires_grad"
  t52 = prims.broadcast_in_dim(cos, shape=[1, 2, 8, 4], broadcast_dimensions=[2, 3])  # t52: "cpu f32[1, 2, 8, 4]"
  t53 = prims.mul(t36, t52)  # t53: "cpu f32[1, 2, 8, 4] requires_grad"
  t54 = prims.broadcast_in_dim(sin, shape=[1, 2, 8, 4], broadcast_dimensions=[2, 3])  # t54: "cpu f32[1, 2, 8, 4]"
  t55 = prims.mul(t51, t54)  # t55: "cpu f32[1, 2, 8, 4] requires_grad"
  t56 = prims.add(t53, t55)  # t56: "cpu f32[1, 2, 8, 4] requires_grad"
  t78 = ltorch.scaled_dot_product_attention(t47, t56, t38, None, dropout_p=0.0, is_causal=True, scale=None, enable_gqa=True)  # t78: "cpu f32[1, 4, 8, 4] requires_grad"
    # t57 = prims.broadcast_in_dim(t56, shape=[1, 2, 2, 8, 4], broadcast_dimensions=[0, 1, 3, 4])
    # t58 = prims.reshape(t57, shape=[1, 4, 8, 4])
    # t59 = prims.broadcast_in_dim(t38, shape=[1, 2, 2, 8, 4], broadcast_dimensions=[0, 1, 3, 4])
    # t60 = prims.reshape(t59, shape=[1, 4, 8, 4])
    # t61 = prims.transpose(t58, permutation=[0, 1, 3, 2])
    # t62 = prims.matmul(t47, t61)
    # t63 = prims.mul(t62, 0.5)
    # t64 = prims.iota(length=8, start=0, step=1, device="cpu", dtype=dtypes.int64)
    # t65 = prims.iota(length=8, start=0, step=1, device="cpu", dtype=dtypes.int64)
    # t66 = prims.broadcast_in_dim(t64, shape=[8, 8], broadcast_dimensions=[0])
    # t67 = prims.broadcast_in_dim(t65, shape=[8, 8], broadcast_dimensions=[1])
    # t68 = prims.ge(t66, t67)
    # t69 = prims.broadcast_in_dim(t68, shape=[1, 4, 8, 8], broadcast_dimensions=[2, 3])
    # t70 = prims.where(t69, t63, -float('inf'))
    # t77 = ltorch.softmax(t70, dim=-1, dtype=None)
      # t71 = prims.amax(t70, dims=[3])
      # t72 = prims.broadcast_in_dim(t71, shape=[1, 4, 8, 8], broadcast_dimensions=[0, 1, 2])
      # t73 = prims.sub(t70, t72)
      # t74 = prims.exp(t73)
      # t75 = prims.sum(t74, dims=[3])
      # t76 = prims.broadcast_in_dim(t75, shape=[1, 4, 8, 8], broadcast_dimensions=[0, 1, 2])
      # t77 = prims.div(t74, t76)
    # t78 = prims.matmul(t77, t60)
  t79 = prims.transpose(t78, permutation=[0, 2, 1, 3])  # t79: "cpu f32[1, 8, 4, 4] requires_grad"
  t80 = prims.reshape(t79, shape=[1, 8, 16])  # t80: "cpu f32[1, 8, 16] requires_grad"
  t81 = prims.linear(t80, t16, None)  # t81: "cpu f32[1, 8, 16] requires_grad"
  t82 = prims.add(x, t81)  # t82: "cpu f32[1, 8, 16] requires_grad"
  t91 = ltorch.rms_norm(t82, t19, normalized_shape=[16], eps=1e-5)  # t91: "cpu f32[1, 8, 16] requires_grad"
    # t83 = prims.mul(t82, t82)
    # t84 = prims.sum(t83, dims=[2])
    # t85 = prims.div(t84, 16.0)
    # t86 = prims.add(t85, 1e-5)
    # t87 = prims.rsqrt(t86)
    # t88 = prims.broadcast_in_dim(t87, shape=[1, 8, 16], broadcast_dimensions=[0, 1])
    # t89 = prims.mul(t82, t88)
    # t90 = prims.broadcast_in_dim(t19, shape=[1, 8, 16], broadcast_dimensions=[2])
    # t91 = prims.mul(t89, t90)
  t92 = ltorch.reshape(fc_2_weight_shard, shape=[-1])  # t92: "cpu f32[256] requires_grad"
    # t92 = prims.reshape(fc_2_weight_shard, shape=[256])
  t93 = dist.all_gather(t92, world_size=3, async_op=True)  # t93: "cpu f32[768] requires_grad"
  t94 = dist.wait(t5)  # t94: "cpu f32[768] requires_grad"
  t95 = ltorch.reshape(t94, shape=[3, 256])  # t95: "cpu f32[3, 256] requires_grad"
    # t95 = prims.reshape(t94, shape=[3, 256])
  t96 = ltorch.reshape(t95, shape=[48, 16])  # t96: "cpu f32[48, 16] requires_grad"
    # t96 = prims.reshape(t95, shape=[48, 16])
  t97 = prims.linear(t91, t96, None)  # t97: "cpu f32[1, 8, 48] requires_grad"
  t98 = ltorch.reshape(proj_weight_shard, shape=[-1])  # t98: "cpu f32[288] requires_grad"
    # t98 = prims.reshape(proj_weight_shard, shape=[288])
  t99 = dist.all_gather(t98, world_size=3, async_op=True)  # t99: "cpu f32[864] requires_grad"
  t100 = dist.wait(t93)  # t100: "cpu f32[768] requires_grad"
  t101 = ltorch.reshape(t100, shape=[3, 256])  # t101: "cpu f32[3, 256] requires_grad"
    # t101 = prims.reshape(t100, shape=[3, 256])
  t102 = ltorch.reshape(t101, shape=[48, 16])  # t102: "cpu f32[48, 16] requires_grad"
    # t102 = prims.reshape(t101, shape=[48, 16])
  t103 = prims.linear(t91, t102, None)  # t103: "cpu f32[1, 8, 48] requires_grad"
  t104 = prims.neg(t97)  # t104: "cpu f32[1, 8, 48] requires_grad"
  t105 = prims.exp(t104)  # t105: "cpu f32[1, 8, 48] requires_grad"
  t106 = prims.add(t105, 1.0)  # t106: "cpu f32[1, 8, 48] requires_grad"
  t107 = prims.reciprocal(t106)  # t107: "cpu f32[1, 8, 48] requires_grad"
  t108 = prims.mul(t97, t107)  # t108: "cpu f32[1, 8, 48] requires_grad"
  t109 = prims.mul(t108, t103)  # t109: "cpu f32[1, 8, 48] requires_grad"
  t110 = dist.wait(t99)  # t110: "cpu f32[864] requires_grad"
  t111 = ltorch.reshape(t110, shape=[3, 288])  # t111: "cpu f32[3, 288] requires_grad"
    # t111 = prims.reshape(t110, shape=[3, 288])
  t112 = ltorch.reshape(t111, shape=[18, 48])  # t112: "cpu f32[18, 48] requires_grad"
    # t112 = prims.reshape(t111, shape=[18, 48])
  t113 = ltorch.narrow(t112, dim=0, start=0, length=16)  # t113: "cpu f32[16, 48] requires_grad"
    # t113 = prims.slice(t112, start_indices=[0, 0], end_indices=[16, 48], strides=[1, 1])
  t114 = prims.linear(t109, t113, None)  # t114: "cpu f32[1, 8, 16] requires_grad"
  t115 = prims.add(t82, t114)  # t115: "cpu f32[1, 8, 16] requires_grad"
  t116 = prims.sum(t115, dims=[0, 1, 2])  # t116: "cpu f32[] requires_grad"
  t117 = prims.div(t116, 128.0)  # t117: "cpu f32[] requires_grad"
  t118 = prims.reshape(t80, shape=[8, 16])  # t118: "cpu f32[8, 16] requires_grad"
  return (t117, proj_weight_shard, t97, t103, fc_2_weight_shard, t82, norm_2_weight_shard, fc_1_weight_shard, attn_proj_weight_shard, t118, t47, t56, t38, sin, cos, attn_weight_shard, x, norm_1_weight_shard)
