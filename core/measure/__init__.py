"""Measurements of any model and batch shape: speed, memory and a cost model.

- `speed`: warm-up, then timed training and inference steps with device synchronisation.
- `memory`: peak memory (CUDA allocator, or an isolated CPU subprocess: `memory_worker`)
  and the deterministic bytes saved for backward.
- `cost`: analytic FLOPs per token and the device's measured matmul peak.
- `flops`: measured FLOPs of one real training step (torch's FlopCounterMode).
- `interleaved`: several models timed side by side, round by round.
- `row`: all of them at once, as one results row; out-of-memory is a status, never a crash.
"""
from core.measure.batch import make_batch, train_step
from core.measure.cost import flops_per_token, matmul_peak_flops
from core.measure.flops import measured_flops, measured_flops_cached, step_flops
from core.measure.interleaved import interleaved_speed
from core.measure.memory import peak_memory, saved_tensor_bytes
from core.measure.row import measure
from core.measure.speed import measure_speed

__all__ = ["flops_per_token", "interleaved_speed", "make_batch", "matmul_peak_flops", "measure", "measure_speed", "step_flops",
           "measured_flops", "measured_flops_cached", "peak_memory",
           "saved_tensor_bytes", "train_step"]
