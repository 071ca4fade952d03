"""One full training step (forward, backward, AdamW) of our models beside reference
implementations, timed in the same run so that the ratios are meaningful.

    pytest benchmarks/bench_train_step.py --benchmark-only --benchmark-group-by=group

- `bert` mini (vocab 8000), batch 32 x 128, vs HF `BertForPreTraining` of the same shape.
  Ours predicts only the masked 15% (sparse MLM); HF decodes every position.
- `reformer` mini at 4096 tokens vs reformer-pytorch's own `ReformerLM` of the same shape.
"""
import pytest
import torch

from core.optim import adamw
from variants import build_model

B, T, V = 32, 128, 8000


def mlm_batch(B, T, V, sentence=True):
    ids = torch.randint(5, V, (B, T))
    labels = torch.full_like(ids, -100)
    picked = torch.rand(B, T) < 0.15
    labels[picked] = ids[picked]
    batch = dict(input_ids=ids, attention_mask=torch.ones_like(ids),
                 token_type_ids=torch.zeros_like(ids), mlm_labels=labels)
    if sentence:
        batch["sentence_labels"] = torch.randint(0, 2, (B,))
    return batch


def make_step(model, loss_fn):
    opt = adamw(model.parameters(), lr=1e-4)  # the Trainer's optimizer, for every model alike
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        opt.step()
        return loss

    step()  # warm-up: allocator, AdamW state
    return step


@pytest.mark.benchmark(group="bert-mini-32x128")
def test_ours_bert_mini(benchmark):
    model = build_model("bert", size="mini", vocab_size=V)
    batch = mlm_batch(B, T, V)
    benchmark.extra_info["tokens"] = B * T
    benchmark.pedantic(make_step(model, lambda: model(**batch).loss), rounds=9, iterations=1)


@pytest.mark.benchmark(group="bert-mini-32x128")
def test_hf_bert_mini(benchmark):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(vocab_size=V, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                                  intermediate_size=1024, max_position_embeddings=512)
    model = transformers.BertForPreTraining(cfg)
    b = mlm_batch(B, T, V)
    benchmark.extra_info["tokens"] = B * T
    benchmark.pedantic(make_step(model, lambda: model(
        input_ids=b["input_ids"], attention_mask=b["attention_mask"], token_type_ids=b["token_type_ids"],
        labels=b["mlm_labels"], next_sentence_label=b["sentence_labels"]).loss), rounds=9, iterations=1)


LONG = 4096


@pytest.mark.benchmark(group="reformer-mini-4096")
def test_ours_reformer_mini_4096(benchmark):
    model = build_model("reformer", size="mini", vocab_size=V, max_position_embeddings=LONG)
    batch = mlm_batch(1, LONG, V)
    benchmark.extra_info["tokens"] = LONG
    benchmark.pedantic(make_step(model, lambda: model(**batch).loss), rounds=5, iterations=1)


@pytest.mark.benchmark(group="reformer-mini-4096")
def test_reformer_pytorch_reformerlm_4096(benchmark):
    from reformer_pytorch import ReformerLM

    # the same shape and the same dropout as our `reformer` (ReformerLM defaults to none)
    model = ReformerLM(num_tokens=V, dim=256, depth=4, heads=4, dim_head=64, max_seq_len=LONG,
                       bucket_size=64, n_hashes=4, ff_chunks=4, absolute_position_emb=True,
                       lsh_dropout=0.1, ff_dropout=0.1, post_attn_dropout=0.1)
    b = mlm_batch(1, LONG, V)
    labels = b["mlm_labels"]
    loss_fn = lambda: torch.nn.functional.cross_entropy(  # noqa: E731
        model(b["input_ids"]).transpose(1, 2), labels, ignore_index=-100)
    benchmark.extra_info["tokens"] = LONG
    benchmark.pedantic(make_step(model, loss_fn), rounds=5, iterations=1)
