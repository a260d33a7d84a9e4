# Printed by thunder-rs (thunder-ir 0.1.0)
import thunder.core.prims as prims
import thunder.torch as ltorch
from thunder.core import dtypes

def llama_attention(x, cos, sin, attn_weight, attn_proj_weight):
  # x: "cuda:0 bf16[2, 8, 16]"
  # cos: "cuda:0 bf16[8, 4]"
  # sin: "cuda:0 bf16[8, 4]"
  # attn_weight: "cuda:0 bf16[32, 16] requires_grad"
  # attn_proj_weight: "cuda:0 bf16[16, 16] requires_grad"
  t0 = ltorch.linear(x, attn_weight, None)  # t0: "cuda:0 bf16[2, 8, 32] requires_grad"
    # t0 = prims.linear(x, attn_weight, None)
  t1, t2, t3 = ltorch.split(t0, split_size_or_sections=[16, 8, 8], dim=-1)  # t1: "cuda:0 bf16[2, 8, 16] requires_grad", t2: "cuda:0 bf16[2, 8, 8] requires_grad", t3: "cuda:0 bf16[2, 8, 8] requires_grad"
    # t1 = prims.slice(t0, start_indices=[0, 0, 0], end_indices=[2, 8, 16], strides=[1, 1, 1])
    # t2 = prims.slice(t0, start_indices=[0, 0, 16], end_indices=[2, 8, 24], strides=[1, 1, 1])
    # t3 = prims.slice(t0, start_indices=[0, 0, 24], end_indices=[2, 8, 32], strides=[1, 1, 1])
  t4 = ltorch.reshape(t1, shape=[2, 8, 4, 4])  # t4: "cuda:0 bf16[2, 8, 4, 4] requires_grad"
    # t4 = prims.reshape(t1, shape=[2, 8, 4, 4])
  t5 = ltorch.transpose(t4, dim0=1, dim1=2)  # t5: "cuda:0 bf16[2, 4, 8, 4] requires_grad"
    # t5 = prims.transpose(t4, permutation=[0, 2, 1, 3])
  t6 = ltorch.reshape(t2, shape=[2, 8, 2, 4])  # t6: "cuda:0 bf16[2, 8, 2, 4] requires_grad"
    # t6 = prims.reshape(t2, shape=[2, 8, 2, 4])
  t7 = ltorch.transpose(t6, dim0=1, dim1=2)  # t7: "cuda:0 bf16[2, 2, 8, 4] requires_grad"
    # t7 = prims.transpose(t6, permutation=[0, 2, 1, 3])
  t8 = ltorch.reshape(t3, shape=[2, 8, 2, 4])  # t8: "cuda:0 bf16[2, 8, 2, 4] requires_grad"
    # t8 = prims.reshape(t3, shape=[2, 8, 2, 4])
  t9 = ltorch.transpose(t8, dim0=1, dim1=2)  # t9: "cuda:0 bf16[2, 2, 8, 4] requires_grad"
    # t9 = prims.transpose(t8, permutation=[0, 2, 1, 3])
  t10 = ltorch.narrow(t5, dim=-1, start=0, length=2)  # t10: "cuda:0 bf16[2, 4, 8, 2] requires_grad"
    # t10 = prims.slice(t5, start_indices=[0, 0, 0, 0], end_indices=[2, 4, 8, 2], strides=[1, 1, 1, 1])
  t11 = ltorch.narrow(t5, dim=-1, start=2, length=2)  # t11: "cuda:0 bf16[2, 4, 8, 2] requires_grad"
    # t11 = prims.slice(t5, start_indices=[0, 0, 0, 2], end_indices=[2, 4, 8, 4], strides=[1, 1, 1, 1])
  t14 = ltorch.neg(t11)  # t14: "cuda:0 bf16[2, 4, 8, 2] requires_grad"
    # t12 = prims.convert_element_type(t11, dtype=dtypes.float32)
    # t13 = prims.neg(t12)
    # t14 = prims.convert_element_type(t13, dtype=dtypes.bfloat16)
  t15 = ltorch.cat([t14, t10], dim=-1)  # t15: "cuda:0 bf16[2, 4, 8, 4] requires_grad"
    # t15 = prims.cat([t14, t10], dim=-1)
  t20 = ltorch.mul(t5, cos)  # t20: "cuda:0 bf16[2, 4, 8, 4] requires_grad"
    # t16 = prims.convert_element_type(t5, dtype=dtypes.float32)
    # t17 = prims.convert_element_type(cos, dtype=dtypes.float32)
    # t18 = prims.broadcast_in_dim(t17, shape=[2, 4, 8, 4], broadcast_dimensions=[2, 3])
    # t19 = prims.mul(t16, t18)
    # t20 = prims.convert_element_type(t19, dtype=dtypes.bfloat16)
  t25 = ltorch.mul(t15, sin)  # t25: "cuda:0 bf16[2, 4, 8, 4] requires_grad"
    # t21 = prims.convert_element_type(t15, dtype=dtypes.float32)
    # t22 = prims.convert_element_type(sin, dtype=dtypes.float32)
    # t23 = prims.broadcast_in_dim(t22, shape=[2, 4, 8, 4], broadcast_dimensions=[2, 3])
    # t24 = prims.mul(t21, t23)
    # t25 = prims.convert_element_type(t24, dtype=dtypes.bfloat16)
  t29 = ltorch.add(t20, t25, alpha=None)  # t29: "cuda:0 bf16[2, 4, 8, 4] requires_grad"
    # t26 = prims.convert_element_type(t20, dtype=dtypes.float32)
    # t27 = prims.convert_element_type(t25, dtype=dtypes.float32)
    # t28 = prims.add(t26, t27)
    # t29 = prims.convert_element_type(t28, dtype=dtypes.bfloat16)
  t30 = ltorch.narrow(t7, dim=-1, start=0, length=2)  # t30: "cuda:0 bf16[2, 2, 8, 2] requires_grad"
    # t30 = prims.slice(t7, start_indices=[0, 0, 0, 0], end_indices=[2, 2, 8, 2], strides=[1, 1, 1, 1])
  t31 = ltorch.narrow(t7, dim=-1, start=2, length=2)  # t31: "cuda:0 bf16[2, 2, 8, 2] requires_grad"
    # t31 = prims.slice(t7, start_indices=[0, 0, 0, 2], end_indices=[2, 2, 8, 4], strides=[1, 1, 1, 1])
  t34 = ltorch.neg(t31)  # t34: "cuda:0 bf16[2, 2, 8, 2] requires_grad"
    # t32 = prims.convert_element_type(t31, dtype=dtypes.float32)
    # t33 = prims.neg(t32)
    # t34 = prims.convert_element_type(t33, dtype=dtypes.bfloat16)
  t35 = ltorch.cat([t34, t30], dim=-1)  # t35: "cuda:0 bf16[2, 2, 8, 4] requires_grad"
    # t35 = prims.cat([t34, t30], dim=-1)
  t40 = ltorch.mul(t7, cos)  # t40: "cuda:0 bf16[2, 2, 8, 4] requires_grad"
    # t36 = prims.convert_element_type(t7, dtype=dtypes.float32)
    # t37 = prims.convert_element_type(cos, dtype=dtypes.float32)
    # t38 = prims.broadcast_in_dim(t37, shape=[2, 2, 8, 4], broadcast_dimensions=[2, 3])
    # t39 = prims.mul(t36, t38)
    # t40 = prims.convert_element_type(t39, dtype=dtypes.bfloat16)
  t45 = ltorch.mul(t35, sin)  # t45: "cuda:0 bf16[2, 2, 8, 4] requires_grad"
    # t41 = prims.convert_element_type(t35, dtype=dtypes.float32)
    # t42 = prims.convert_element_type(sin, dtype=dtypes.float32)
    # t43 = prims.broadcast_in_dim(t42, shape=[2, 2, 8, 4], broadcast_dimensions=[2, 3])
    # t44 = prims.mul(t41, t43)
    # t45 = prims.convert_element_type(t44, dtype=dtypes.bfloat16)
  t49 = ltorch.add(t40, t45, alpha=None)  # t49: "cuda:0 bf16[2, 2, 8, 4] requires_grad"
    # t46 = prims.convert_element_type(t40, dtype=dtypes.float32)
    # t47 = prims.convert_element_type(t45, dtype=dtypes.float32)
    # t48 = prims.add(t46, t47)
    # t49 = prims.convert_element_type(t48, dtype=dtypes.bfloat16)
  t75 = ltorch.scaled_dot_product_attention(t29, t49, t9, None, dropout_p=0.0, is_causal=True, scale=None, enable_gqa=True)  # t75: "cuda:0 bf16[2, 4, 8, 4] requires_grad"
    # t50 = prims.broadcast_in_dim(t49, shape=[2, 2, 2, 8, 4], broadcast_dimensions=[0, 1, 3, 4])
    # t51 = prims.reshape(t50, shape=[2, 4, 8, 4])
    # t52 = prims.broadcast_in_dim(t9, shape=[2, 2, 2, 8, 4], broadcast_dimensions=[0, 1, 3, 4])
    # t53 = prims.reshape(t52, shape=[2, 4, 8, 4])
    # t54 = prims.convert_element_type(t29, dtype=dtypes.float32)
    # t55 = prims.convert_element_type(t51, dtype=dtypes.float32)
    # t56 = prims.convert_element_type(t53, dtype=dtypes.float32)
    # t57 = prims.transpose(t55, permutation=[0, 1, 3, 2])
    # t58 = prims.matmul(t54, t57)
    # t59 = prims.mul(t58, 0.5)
    # t60 = prims.iota(length=8, start=0, step=1, device="cuda:0", dtype=dtypes.int64)
    # t61 = prims.iota(length=8, start=0, step=1, device="cuda:0", dtype=dtypes.int64)
    # t62 = prims.broadcast_in_dim(t60, shape=[8, 8], broadcast_dimensions=[0])
    # t63 = prims.broadcast_in_dim(t61, shape=[8, 8], broadcast_dimensions=[1])
    # t64 = prims.ge(t62, t63)
    # t65 = prims.broadcast_in_dim(t64, shape=[2, 4, 8, 8], broadcast_dimensions=[2, 3])
    # t66 = prims.where(t65, t59, -float('inf'))
    # t73 = ltorch.softmax(t66, dim=-1, dtype=None)
      # t67 = prims.amax(t66, dims=[3])
      # t68 = prims.broadcast_in_dim(t67, shape=[2, 4, 8, 8], broadcast_dimensions=[0, 1, 2])
      # t69 = prims.sub(t66, t68)
      # t70 = prims.exp(t69)
      # t71 = prims.sum(t70, dims=[3])
      # t72 = prims.broadcast_in_dim(t71, shape=[2, 4, 8, 8], broadcast_dimensions=[0, 1, 2])
      # t73 = prims.div(t70, t72)
    # t74 = prims.matmul(t73, t56)
    # t75 = prims.convert_element_type(t74, dtype=dtypes.bfloat16)
  t76 = ltorch.transpose(t75, dim0=1, dim1=2)  # t76: "cuda:0 bf16[2, 8, 4, 4] requires_grad"
    # t76 = prims.transpose(t75, permutation=[0, 2, 1, 3])
  t77 = ltorch.reshape(t76, shape=[2, 8, 16])  # t77: "cuda:0 bf16[2, 8, 16] requires_grad"
    # t77 = prims.reshape(t76, shape=[2, 8, 16])
  t78 = ltorch.linear(t77, attn_proj_weight, None)  # t78: "cuda:0 bf16[2, 8, 16] requires_grad"
    # t78 = prims.linear(t77, attn_proj_weight, None)
  return t78
