# Printed by thunder-rs (thunder-ir 0.1.0)
import thunder.core.prims as prims
import thunder.torch as ltorch
from thunder.core import dtypes
import thunder.distributed.prims as dist

def block_loss_forward_fsdp(x, cos, sin, bucket0_shard, bucket1_shard, bucket2_shard, bucket3_shard):
  # x: "cpu f32[1, 8, 16]"
  # cos: "cpu f32[8, 4]"
  # sin: "cpu f32[8, 4]"
  # bucket0_shard: "cpu f32[267]"
  # bucket1_shard: "cpu f32[256]"
  # bucket2_shard: "cpu f32[256]"
  # bucket3_shard: "cpu f32[256]"
  t0 = dist.all_gather(bucket0_shard, world_size=3, async_op=True)  # t0: "cpu f32[801]"
  t1 = dist.all_gather(bucket1_shard, world_size=3, async_op=True)  # t1: "cpu f32[768]"
  t2 = dist.wait(t0)  # t2: "cpu f32[801]"
  t3 = ltorch.narrow(t2, dim=0, start=0, length=16)  # t3: "cpu f32[16]"
    # t3 = prims.slice(t2, start_indices=[0], end_indices=[16], strides=[1])
  t4 = ltorch.narrow(t2, dim=0, start=16, length=512)  # t4: "cpu f32[512]"
    # t4 = prims.slice(t2, start_indices=[16], end_indices=[528], strides=[1])
  t5 = ltorch.reshape(t4, shape=[32, 16])  # t5: "cpu f32[32, 16]"
    # t5 = prims.reshape(t4, shape=[32, 16])
  t6 = ltorch.narrow(t2, dim=0, start=528, length=256)  # t6: "cpu f32[256]"
    # t6 = prims.slice(t2, start_indices=[528], end_indices=[784], strides=[1])
  t7 = ltorch.reshape(t6, shape=[16, 16])  # t7: "cpu f32[16, 16]"
    # t7 = prims.reshape(t6, shape=[16, 16])
  t8 = ltorch.narrow(t2, dim=0, start=784, length=16)  # t8: "cpu f32[16]"
    # t8 = prims.slice(t2, start_indices=[784], end_indices=[800], strides=[1])
  t17 = ltorch.rms_norm(x, t3, normalized_shape=[16], eps=1e-5)  # t17: "cpu f32[1, 8, 16]"
    # t9 = prims.mul(x, x)
    # t10 = prims.sum(t9, dims=[2])
    # t11 = prims.div(t10, 16.0)
    # t12 = prims.add(t11, 1e-5)
    # t13 = prims.rsqrt(t12)
    # t14 = prims.broadcast_in_dim(t13, shape=[1, 8, 16], broadcast_dimensions=[0, 1])
    # t15 = prims.mul(x, t14)
    # t16 = prims.broadcast_in_dim(t3, shape=[1, 8, 16], broadcast_dimensions=[2])
    # t17 = prims.mul(t15, t16)
  t18 = prims.linear(t17, t5, None)  # t18: "cpu f32[1, 8, 32]"
  t19 = prims.slice(t18, start_indices=[0, 0, 0], end_indices=[1, 8, 16], strides=[1, 1, 1])  # t19: "cpu f32[1, 8, 16]"
  t20 = prims.slice(t18, start_indices=[0, 0, 16], end_indices=[1, 8, 24], strides=[1, 1, 1])  # t20: "cpu f32[1, 8, 8]"
  t21 = prims.slice(t18, start_indices=[0, 0, 24], end_indices=[1, 8, 32], strides=[1, 1, 1])  # t21: "cpu f32[1, 8, 8]"
  t22 = prims.reshape(t19, shape=[1, 8, 4, 4])  # t22: "cpu f32[1, 8, 4, 4]"
  t23 = prims.transpose(t22, permutation=[0, 2, 1, 3])  # t23: "cpu f32[1, 4, 8, 4]"
  t24 = prims.reshape(t20, shape=[1, 8, 2, 4])  # t24: "cpu f32[1, 8, 2, 4]"
  t25 = prims.transpose(t24, permutation=[0, 2, 1, 3])  # t25: "cpu f32[1, 2, 8, 4]"
  t26 = prims.reshape(t21, shape=[1, 8, 2, 4])  # t26: "cpu f32[1, 8, 2, 4]"
  t27 = prims.transpose(t26, permutation=[0, 2, 1, 3])  # t27: "cpu f32[1, 2, 8, 4]"
  t28 = prims.slice(t23, start_indices=[0, 0, 0, 0], end_indices=[1, 4, 8, 2], strides=[1, 1, 1, 1])  # t28: "cpu f32[1, 4, 8, 2]"
  t29 = prims.slice(t23, start_indices=[0, 0, 0, 2], end_indices=[1, 4, 8, 4], strides=[1, 1, 1, 1])  # t29: "cpu f32[1, 4, 8, 2]"
  t30 = prims.neg(t29)  # t30: "cpu f32[1, 4, 8, 2]"
  t31 = prims.cat([t30, t28], dim=-1)  # t31: "cpu f32[1, 4, 8, 4]"
  t32 = prims.broadcast_in_dim(cos, shape=[1, 4, 8, 4], broadcast_dimensions=[2, 3])  # t32: "cpu f32[1, 4, 8, 4]"
  t33 = prims.mul(t23, t32)  # t33: "cpu f32[1, 4, 8, 4]"
  t34 = prims.broadcast_in_dim(sin, shape=[1, 4, 8, 4], broadcast_dimensions=[2, 3])  # t34: "cpu f32[1, 4, 8, 4]"
  t35 = prims.mul(t31, t34)  # t35: "cpu f32[1, 4, 8, 4]"
  t36 = prims.add(t33, t35)  # t36: "cpu f32[1, 4, 8, 4]"
  t37 = prims.slice(t25, start_indices=[0, 0, 0, 0], end_indices=[1, 2, 8, 2], strides=[1, 1, 1, 1])  # t37: "cpu f32[1, 2, 8, 2]"
  t38 = prims.slice(t25, start_indices=[0, 0, 0, 2], end_indices=[1, 2, 8, 4], strides=[1, 1, 1, 1])  # t38: "cpu f32[1, 2, 8, 2]"
  t39 = prims.neg(t38)  # t39: "cpu f32[1, 2, 8, 2]"
  t40 = prims.cat([t39, t37], dim=-1)  # t40: "cpu f32[1, 2, 8, 4]"
  t41 = prims.broadcast_in_dim(cos, shape=[1, 2, 8, 4], broadcast_dimensions=[2, 3])  # t41: "cpu f32[1, 2, 8, 4]"
  t42 = prims.mul(t25, t41)  # t42: "cpu f32[1, 2, 8, 4]"
  t43 = prims.broadcast_in_dim(sin, shape=[1, 2, 8, 4], broadcast_dimensions=[2, 3])  # t43: "cpu f32[1, 2, 8, 4]"
  t44 = prims.mul(t40, t43)  # t44: "cpu f32[1, 2, 8, 4]"
  t45 = prims.add(t42, t44)  # t45: "cpu f32[1, 2, 8, 4]"
  t67 = ltorch.scaled_dot_product_attention(t36, t45, t27, None, dropout_p=0.0, is_causal=True, scale=None, enable_gqa=True)  # t67: "cpu f32[1, 4, 8, 4]"
    # t46 = prims.broadcast_in_dim(t45, shape=[1, 2, 2, 8, 4], broadcast_dimensions=[0, 1, 3, 4])
    # t47 = prims.reshape(t46, shape=[1, 4, 8, 4])
    # t48 = prims.broadcast_in_dim(t27, shape=[1, 2, 2, 8, 4], broadcast_dimensions=[0, 1, 3, 4])
    # t49 = prims.reshape(t48, shape=[1, 4, 8, 4])
    # t50 = prims.transpose(t47, permutation=[0, 1, 3, 2])
    # t51 = prims.matmul(t36, t50)
    # t52 = prims.mul(t51, 0.5)
    # t53 = prims.iota(length=8, start=0, step=1, device="cpu", dtype=dtypes.int64)
    # t54 = prims.iota(length=8, start=0, step=1, device="cpu", dtype=dtypes.int64)
    # t55 = prims.broadcast_in_dim(t53, shape=[8, 8], broadcast_dimensions=[0])
    # t56 = prims.broadcast_in_dim(t54, shape=[8, 8], broadcast_dimensions=[1])
    # t57 = prims.ge(t55, t56)
    # t58 = prims.broadcast_in_dim(t57, shape=[1, 4, 8, 8], broadcast_dimensions=[2, 3])
    # t59 = prims.where(t58, t52, -float('inf'))
    # t66 = ltorch.softmax(t59, dim=-1, dtype=None)
      # t60 = prims.amax(t59, dims=[3])
      # t61 = prims.broadcast_in_dim(t60, shape=[1, 4, 8, 8], broadcast_dimensions=[0, 1, 2])
      # t62 = prims.sub(t59, t61)
      # t63 = prims.exp(t62)
      # t64 = prims.sum(t63, dims=[3])
      # t65 = prims.broadcast_in_dim(t64, shape=[1, 4, 8, 8], broadcast_dimensions=[0, 1, 2])
      # t66 = prims.div(t63, t65)
    # t67 = prims.matmul(t66, t49)
  t68 = prims.transpose(t67, permutation=[0, 2, 1, 3])  # t68: "cpu f32[1, 8, 4, 4]"
  t69 = prims.reshape(t68, shape=[1, 8, 16])  # t69: "cpu f32[1, 8, 16]"
  t70 = prims.linear(t69, t7, None)  # t70: "cpu f32[1, 8, 16]"
  t71 = prims.add(x, t70)  # t71: "cpu f32[1, 8, 16]"
  t80 = ltorch.rms_norm(t71, t8, normalized_shape=[16], eps=1e-5)  # t80: "cpu f32[1, 8, 16]"
    # t72 = prims.mul(t71, t71)
    # t73 = prims.sum(t72, dims=[2])
    # t74 = prims.div(t73, 16.0)
    # t75 = prims.add(t74, 1e-5)
    # t76 = prims.rsqrt(t75)
    # t77 = prims.broadcast_in_dim(t76, shape=[1, 8, 16], broadcast_dimensions=[0, 1])
    # t78 = prims.mul(t71, t77)
    # t79 = prims.broadcast_in_dim(t8, shape=[1, 8, 16], broadcast_dimensions=[2])
    # t80 = prims.mul(t78, t79)
  t81 = dist.all_gather(bucket2_shard, world_size=3, async_op=True)  # t81: "cpu f32[768]"
  t82 = dist.wait(t1)  # t82: "cpu f32[768]"
  t83 = ltorch.reshape(t82, shape=[48, 16])  # t83: "cpu f32[48, 16]"
    # t83 = prims.reshape(t82, shape=[48, 16])
  t84 = prims.linear(t80, t83, None)  # t84: "cpu f32[1, 8, 48]"
  t85 = dist.all_gather(bucket3_shard, world_size=3, async_op=True)  # t85: "cpu f32[768]"
  t86 = dist.wait(t81)  # t86: "cpu f32[768]"
  t87 = ltorch.reshape(t86, shape=[48, 16])  # t87: "cpu f32[48, 16]"
    # t87 = prims.reshape(t86, shape=[48, 16])
  t88 = prims.linear(t80, t87, None)  # t88: "cpu f32[1, 8, 48]"
  t89 = prims.neg(t84)  # t89: "cpu f32[1, 8, 48]"
  t90 = prims.exp(t89)  # t90: "cpu f32[1, 8, 48]"
  t91 = prims.add(t90, 1.0)  # t91: "cpu f32[1, 8, 48]"
  t92 = prims.reciprocal(t91)  # t92: "cpu f32[1, 8, 48]"
  t93 = prims.mul(t84, t92)  # t93: "cpu f32[1, 8, 48]"
  t94 = prims.mul(t93, t88)  # t94: "cpu f32[1, 8, 48]"
  t95 = dist.wait(t85)  # t95: "cpu f32[768]"
  t96 = ltorch.reshape(t95, shape=[16, 48])  # t96: "cpu f32[16, 48]"
    # t96 = prims.reshape(t95, shape=[16, 48])
  t97 = prims.linear(t94, t96, None)  # t97: "cpu f32[1, 8, 16]"
  t98 = prims.add(t71, t97)  # t98: "cpu f32[1, 8, 16]"
  t99 = prims.sum(t98, dims=[0, 1, 2])  # t99: "cpu f32[]"
  t100 = prims.div(t99, 128.0)  # t100: "cpu f32[]"
  t101 = prims.reshape(t69, shape=[8, 16])  # t101: "cpu f32[8, 16]"
  return (t100, bucket3_shard, t84, t88, bucket2_shard, t71, bucket0_shard, bucket1_shard, t101, t36, t45, t27, sin, cos, x)
