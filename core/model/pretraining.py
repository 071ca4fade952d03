"""PretrainingModel: embeddings -> encoder -> heads -> losses, from one ModelConfig."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from core.model.config import ModelConfig
from core.model.embeddings import Embeddings
from core.model.encoder import Encoder
from core.model.heads import MLMHead, SentenceHead
from core.model.unpad import Packing

IGNORE_INDEX = -100


@dataclass
class PretrainingOutput:
    loss: torch.Tensor | None
    mlm_loss: torch.Tensor | None
    sentence_loss: torch.Tensor | None
    mlm_logits: torch.Tensor            # (N, V) at predicted positions, or (B, T, V) without labels
    sentence_logits: torch.Tensor | None
    hidden_states: torch.Tensor


class PretrainingModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embeddings = Embeddings(cfg)
        self.encoder = Encoder(cfg)
        self.mlm_head = MLMHead(cfg, self.embeddings.word)
        self.sentence_head = SentenceHead(cfg) if cfg.sentence_head else None
        self.hash_seed: int | None = None
        # run the encoder on the real tokens only (core.model.unpad); a run-time choice, not
        # architecture: the weights, and the real tokens' outputs, are the same either way.
        # Encoders whose attention does not pack (LSH) ignore it
        self.unpad = False
        self.apply(self._init_weights)

    @property
    def local_kernel(self) -> str:
        """The kernel of the local (sliding-window) layers: auto (flex on CUDA, banded on a
        CPU), banded, flex or dense (core.model.local). A run-time choice, like `unpad`."""
        return self._layer_setting("local_kernel")

    @local_kernel.setter
    def local_kernel(self, name: str) -> None:
        from core.model.local import kernel_for

        kernel_for(name, torch.device("cpu"))  # a bad name fails here
        self._set_layer_setting("local_kernel", name)

    @property
    def attention_kernel(self) -> str:
        """The kernel of BigBird's block-sparse layers: auto (flex on CUDA, gather on a CPU),
        gather, flex or dense (core.model.blocksparse). A run-time choice, like `local_kernel`."""
        return self._layer_setting("sparse_kernel")

    @attention_kernel.setter
    def attention_kernel(self, name: str) -> None:
        from core.model.blocksparse import kernel_for

        kernel_for(name, torch.device("cpu"))  # a bad name fails here
        self._set_layer_setting("sparse_kernel", name)

    def _layer_setting(self, attr: str) -> str:
        """A run-time kernel choice the attention layers hold (`auto` where no layer has one);
        this model is skipped before the attribute is asked, or its own property would recurse."""
        return next((getattr(m, attr) for m in self.modules() if m is not self and hasattr(m, attr)), "auto")

    def _set_layer_setting(self, attr: str, name: str) -> None:
        for m in self.modules():
            if m is not self and hasattr(m, attr):
                setattr(m, attr, name)

    def kernels_ran(self) -> dict[str, int]:
        """Calls per attention kernel since the model was built (sparse kinds and local
        layers: banded, flex, dense, gather, full, lsh), over every layer."""
        total: dict[str, int] = {}
        for m in self.modules():
            for kernel, n in getattr(m, "ran", {}).items():
                total[kernel] = total.get(kernel, 0) + n
        return total

    @property
    def attention_paths(self) -> dict[str, int]:
        """Training forwards per attention path of a sparse kind: "full" (a batch within
        `full_attn_threshold`) or the kind's name; {} for a full-attention model."""
        return dict(self.encoder.paths)

    def set_random_blocks(self, plans: dict[int, torch.Tensor]) -> None:
        """BigBird: use `plans[layer]` ((heads, blocks - 2, r) key blocks) as each layer's random
        blocks at that number of blocks, e.g. those HF drew (core.interop.hf_bigbird)."""
        if self.cfg.attention != "bigbird":
            raise ValueError(f"random blocks are BigBird's; this model's attention is {self.cfg.attention!r}")
        for layer, blocks in plans.items():
            self.encoder.attention[self.encoder.attention_index[layer]].fn.set_random_blocks(layer, blocks)

    def _init_weights(self, module: nn.Module) -> None:
        std = self.cfg.initializer_range
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm | nn.RMSNorm):
            nn.init.ones_(module.weight)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    @contextlib.contextmanager
    def seeded_hashing(self, seed: int | None) -> Iterator[None]:
        """Fix LSH hashing (reformer-pytorch draws rotations from the global RNG) so that
        every arm is evaluated on identical buckets; the caller's RNG is left untouched."""
        old, self.hash_seed = self.hash_seed, seed
        try:
            yield
        finally:
            self.hash_seed = old

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
               token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states (B, T, H) without any head: what fine-tuning heads read."""
        mask = None if attention_mask is None else attention_mask.bool()
        if mask is not None and bool(mask.all()):
            # nothing to mask: skipping the mask lets SDPA pick its fused kernels and spares
            # LSH its masking passes (one host sync per forward, not one per layer)
            mask = None
        x = self.embeddings(input_ids, token_type_ids)
        packing = Packing.from_mask(mask) if self.unpad and mask is not None and self.encoder.packs else None
        if packing is not None:
            x = packing.unpad(x)
        if self.hash_seed is None:
            h = self.encoder(x, mask, packing)
        else:
            devices = [x.device] if x.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.hash_seed)
                h = self.encoder(x, mask, packing)
        return h if packing is None else packing.pad(h)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        mlm_labels: torch.Tensor | None = None,
        sentence_labels: torch.Tensor | None = None,
    ) -> PretrainingOutput:
        h = self.encode(input_ids, attention_mask, token_type_ids)
        mlm_loss = sentence_loss = sentence_logits = None
        if mlm_labels is not None:
            picked = mlm_labels != IGNORE_INDEX
            mlm_logits = self.mlm_head(h[picked])
            mlm_loss = F.cross_entropy(mlm_logits.float(), mlm_labels[picked]) if picked.any() else h.sum() * 0
        else:
            mlm_logits = self.mlm_head(h)
        if self.sentence_head is not None:
            sentence_logits = self.sentence_head(h)
            if sentence_labels is not None:
                sentence_loss = F.cross_entropy(sentence_logits.float(), sentence_labels)
        elif sentence_labels is not None:
            raise ValueError("sentence_labels given, but this model has no sentence head (sentence_head=False)")
        losses = [part for part in (mlm_loss, sentence_loss) if part is not None]
        loss = sum(losses) if losses else None
        return PretrainingOutput(loss, mlm_loss, sentence_loss, mlm_logits, sentence_logits, h)

    # -- parameter accounting -------------------------------------------------------
    def parameter_counts(self) -> dict[str, int]:
        """`unique` counts a shared tensor once (memory); `total` counts it per use
        (compute, and what an unshared model of the same shape would hold)."""
        n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        enc_unique = n(self.encoder)
        enc_total = sum(n(a) + n(f) for a, f in self.encoder.layers())
        if self.encoder.final_norm is not None:
            enc_total += n(self.encoder.final_norm)
        unique = n(self)
        embedding = n(self.embeddings)
        return {
            "unique": unique,
            "total": unique - enc_unique + enc_total,
            "embedding": embedding,
            "encoder_unique": enc_unique,
            "encoder_total": enc_total,
            "heads": unique - embedding - enc_unique,
        }
