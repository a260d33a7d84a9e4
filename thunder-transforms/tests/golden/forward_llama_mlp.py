# Printed by thunder-rs (thunder-ir 0.1.0)
import thunder.core.prims as prims
import thunder.torch as ltorch
from thunder.core import dtypes

def llama_mlp_forward(x, fc_1_weight, fc_2_weight, proj_weight):
  # x: "cpu f32[2, 8, 16]"
  # fc_1_weight: "cpu f32[48, 16] requires_grad"
  # fc_2_weight: "cpu f32[48, 16] requires_grad"
  # proj_weight: "cpu f32[16, 48] requires_grad"
  t0 = prims.linear(x, fc_1_weight, None)  # t0: "cpu f32[2, 8, 48] requires_grad"
  t1 = prims.linear(x, fc_2_weight, None)  # t1: "cpu f32[2, 8, 48] requires_grad"
  t2 = prims.neg(t0)  # t2: "cpu f32[2, 8, 48] requires_grad"
  t3 = prims.exp(t2)  # t3: "cpu f32[2, 8, 48] requires_grad"
  t4 = prims.add(t3, 1.0)  # t4: "cpu f32[2, 8, 48] requires_grad"
  t5 = prims.reciprocal(t4)  # t5: "cpu f32[2, 8, 48] requires_grad"
  t6 = prims.mul(t0, t5)  # t6: "cpu f32[2, 8, 48] requires_grad"
  t7 = prims.mul(t6, t1)  # t7: "cpu f32[2, 8, 48] requires_grad"
  t8 = prims.linear(t7, proj_weight, None)  # t8: "cpu f32[2, 8, 16] requires_grad"
  return (t8, proj_weight, t0, t1, x)
