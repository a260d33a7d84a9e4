# Printed by thunder-rs (thunder-ir 0.1.0)
import thunder.core.prims as prims
import thunder.torch as ltorch
from thunder.core import dtypes

def lm_head_loss(x, targets, ln_f_weight, lm_head_weight):
  # x: "cuda:0 bf16[2, 8, 16]"
  # targets: "cuda:0 i64[2, 8]"
  # ln_f_weight: "cuda:0 bf16[16] requires_grad"
  # lm_head_weight: "cuda:0 bf16[64, 16] requires_grad"
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
  t12 = ltorch.linear(t11, lm_head_weight, None)  # t12: "cuda:0 bf16[2, 8, 64] requires_grad"
    # t12 = prims.linear(t11, lm_head_weight, None)
  t13 = ltorch.reshape(t12, shape=[-1, 64])  # t13: "cuda:0 bf16[16, 64] requires_grad"
    # t13 = prims.reshape(t12, shape=[16, 64])
  t14 = ltorch.reshape(targets, shape=[-1])  # t14: "cuda:0 i64[16]"
    # t14 = prims.reshape(targets, shape=[16])
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
  return t35
