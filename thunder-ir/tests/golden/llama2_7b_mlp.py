# Printed by thunder-rs (thunder-ir 0.1.0)
import thunder.core.prims as prims
import thunder.torch as ltorch
from thunder.core import dtypes

def llama_mlp(x, fc_1_weight, fc_2_weight, proj_weight):
  # x: "cuda:0 bf16[1, 4096, 4096]"
  # fc_1_weight: "cuda:0 bf16[11008, 4096] requires_grad"
  # fc_2_weight: "cuda:0 bf16[11008, 4096] requires_grad"
  # proj_weight: "cuda:0 bf16[4096, 11008] requires_grad"
  t0 = ltorch.linear(x, fc_1_weight, None)  # t0: "cuda:0 bf16[1, 4096, 11008] requires_grad"
    # t0 = prims.linear(x, fc_1_weight, None)
  t1 = ltorch.linear(x, fc_2_weight, None)  # t1: "cuda:0 bf16[1, 4096, 11008] requires_grad"
    # t1 = prims.linear(x, fc_2_weight, None)
  t8 = ltorch.silu(t0)  # t8: "cuda:0 bf16[1, 4096, 11008] requires_grad"
    # t2 = prims.convert_element_type(t0, dtype=dtypes.float32)
    # t3 = prims.neg(t2)
    # t4 = prims.exp(t3)
    # t5 = prims.add(t4, 1.0)
    # t6 = prims.reciprocal(t5)
    # t7 = prims.mul(t2, t6)
    # t8 = prims.convert_element_type(t7, dtype=dtypes.bfloat16)
  t12 = ltorch.mul(t8, t1)  # t12: "cuda:0 bf16[1, 4096, 11008] requires_grad"
    # t9 = prims.convert_element_type(t8, dtype=dtypes.float32)
    # t10 = prims.convert_element_type(t1, dtype=dtypes.float32)
    # t11 = prims.mul(t9, t10)
    # t12 = prims.convert_element_type(t11, dtype=dtypes.bfloat16)
  t13 = ltorch.linear(t12, proj_weight, None)  # t13: "cuda:0 bf16[1, 4096, 4096] requires_grad"
    # t13 = prims.linear(t12, proj_weight, None)
  return t13
