"""The entity F1 that KLUE-NER's gold tags reach through a tokenizer's pieces and back: the
best any model can score with it.

    python benchmarks/ner_alignment_ceiling.py PATH/TO/tokenizer.model
"""
import glob
import sys

from core.data.tokenizer import load_tokenizer
from core.finetune import alignment_ceiling, load_task

tok = load_tokenizer(glob.glob(sys.argv[1])[0])
task = load_task("klue-ner")
for split, ex in task.splits.items():
    texts = [e.text_a for e in ex]
    offsets = [o for _, o in tok.encode_with_offsets(texts)]
    print(split, len(ex), "ceiling F1", round(alignment_ceiling([e.label for e in ex], offsets, texts, task.classes), 4),
          "pieces/sentence", round(sum(map(len, offsets)) / len(ex), 1))
