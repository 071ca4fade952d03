"""bert-ablate's building blocks, one sub-package per concern. Dependencies point down:

    train/    TrainConfig, Trainer, checkpoints, held-out evaluation, warm starts
    measure/  speed, memory (isolated subprocess on CPU), cost model (FLOPs, matmul peak)
    finetune/ downstream tasks (TSV), heads, the fine-tuning loop, scores with intervals
        │  (these three never import each other)
        ▼
    interop/  HF conversion, export/load of arms (HF or native format), warm-start copying
        │
        ▼
    model/    ModelConfig, embeddings, attention kinds, encoder, heads, PretrainingModel
    data/     corpus → sentences → SentencePiece → examples → masks
        │  (model and data never import each other)
        ▼
    config_base.py  strict, JSON round-tripping config dataclasses
    registry.py     name registries that fail loudly with the valid choices
    device.py       device choice, precision (bf16 autocast on CUDA; on a CPU on request), OOM recognition
    files.py        atomic writes of files and directories
    optim.py        the one AdamW constructor that training and measurement share

`core` knows no variant or ablation name: `variants/` and `ablations/` sit above it.
The import contracts in pyproject.toml (checked by `lint-imports` and the test suite)
keep these arrows pointing down. A new piece goes in the sub-package of its concern.
"""
