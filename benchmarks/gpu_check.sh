#!/usr/bin/env bash
# The prepared device check: everything that needs a GPU, in one command of at most 8 minutes
# on one H100/H200. Figures go to OUT/gpu_check.json, a short summary to OUT/gpu_check.md,
# each part's output to OUT/logs/PART.log. Each part has its own time limit; a failing part
# is recorded and the rest go on. docs/benchmarks.md#the-gpu-check says how to fetch WHEELS.
#
#   bash benchmarks/gpu_check.sh WHEELS [--out DIR] [--tokens N] [--python PY] [--dry-run]
#
# --dry-run checks the arguments and the wheel folder and lists what would run (no GPU needed).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# what the GPU machine lacks: reformer-pytorch and its pure-Python dependencies, rich-argparse
WHEEL_NAMES=(reformer_pytorch axial_positional_embedding local_attention product_key_memory colt5_attention
             hyper_connections torch_einops_utils rich_argparse)
WHEELS="" OUT="runs/gpu-check" TOKENS=131072 PY=python DRY=0

die() { echo "gpu_check.sh: $*" >&2; exit 2; }
usage() { sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --out|--tokens|--python)
      [ $# -ge 2 ] && [[ "$2" != --* ]] || die "$1 needs a value"
      case "$1" in --out) OUT="$2" ;; --tokens) TOKENS="$2" ;; --python) PY="$2" ;; esac
      shift 2 ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option $1 (valid: --out DIR, --tokens N, --python PY, --dry-run)" ;;
    *) [ -z "$WHEELS" ] || die "one wheel folder expected, got a second argument $1"; WHEELS="$1"; shift ;;
  esac
done

[ -n "$WHEELS" ] || die "no wheel folder given: bash benchmarks/gpu_check.sh WHEELS [--dry-run] (docs/benchmarks.md#the-gpu-check says how to download them)"
[ -d "$WHEELS" ] || die "wheel folder $WHEELS not found: download the wheels into it first (docs/benchmarks.md#the-gpu-check)"
[[ "$TOKENS" =~ ^[1-9][0-9]*$ ]] || die "--tokens must be a positive integer (training tokens per arm), got $TOKENS"
WHEELS="$(cd "$WHEELS" && pwd)"
shopt -s nocaseglob
missing=()
for name in "${WHEEL_NAMES[@]}"; do
  compgen -G "$WHEELS/${name}-*.whl" > /dev/null || missing+=("$name")
done
shopt -u nocaseglob
[ ${#missing[@]} -eq 0 ] || die "wheel folder $WHEELS lacks ${missing[*]}: download them as docs/benchmarks.md#the-gpu-check says"
grep -q "^cat > pretrain.py <<'EOF'$" "$ROOT/docs/distributed.md" || die "docs/distributed.md lost the multi-node recipe's pretrain.py, which the torchrun part runs"

OUT="$(realpath -m "$OUT")"  # a dry run creates nothing

RUN="$PY -m ablations run albert_reformer --budget gpu --tokens $TOKENS --device cuda --no-progress --out $OUT/run"
PARTS=(install tests train_step modern_step seq_bench run resume torchrun)
declare -A LIMIT=([install]=30 [tests]=75 [train_step]=60 [modern_step]=45 [seq_bench]=60 [run]=120 [resume]=45 [torchrun]=45)
declare -A CMD=(
  [install]="$PY -m pip install --no-index --find-links $WHEELS reformer-pytorch rich-argparse"
  [tests]="$PY -m pytest tests/unit/core/test_cuda.py tests/integration/test_distributed.py::test_nccl_ranks_on_every_visible_gpu -q -rA -p no:cacheprovider --junitxml $OUT/parts/tests.xml"
  [train_step]="$PY benchmarks/bench_train_step.py --device cuda --bf16 --size base --batch 32 --seq 512 --vocab 30522 --rounds 7 --no-reformer --json $OUT/parts/train_step.json"
  [modern_step]="$PY benchmarks/bench_modernbert.py --device cuda --bf16 --lengths 512,2048 --rounds 5 --json $OUT/parts/modern_step.json"
  [seq_bench]="$PY -m ablations bench both --variants bert,reformer,modernbert --seq-lens 4096,8192 --size mini --tokens-per-batch 8192 --device cuda --out $OUT/seq-bench"
  [run]="$RUN"
  [resume]="$RUN"
  [torchrun]="$PY -m torch.distributed.run --standalone --nproc-per-node 1 $OUT/pretrain.py --out $OUT/torchrun --variant albert-reformer --size mini --vocab-size 8000 --max-length 512 --batch-size 16 --steps 20"
)
total=0
for part in "${PARTS[@]}"; do total=$((total + LIMIT[$part])); done

if [ "$DRY" = 1 ]; then
  echo "gpu_check dry run: wheels in $WHEELS (${#WHEEL_NAMES[@]} found), output to $OUT"
  for part in "${PARTS[@]}"; do
    printf '%-10s (limit %3ss): %s\n' "$part" "${LIMIT[$part]}" "${CMD[$part]}"
  done
  echo "limits add up to ${total}s; writes $OUT/gpu_check.json and $OUT/gpu_check.md"
  exit 0
fi

cd "$ROOT" || die "cannot enter $ROOT"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
  || die "no CUDA device visible to $PY: run this on the GPU machine (or add --dry-run)"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" BERT_ABLATE_CACHE="${BERT_ABLATE_CACHE:-$OUT/cache}"
mkdir -p "$OUT/logs" "$OUT/parts" || die "cannot create the output folder $OUT"
: > "$OUT/parts/status.jsonl"
# the torchrun part runs the multi-node script of docs/distributed.md, on one rank
sed -n "/^cat > pretrain.py <<'EOF'$/,/^EOF$/p" docs/distributed.md | sed '1d;$d' > "$OUT/pretrain.py"

for part in "${PARTS[@]}"; do
  start=$(date +%s.%N)
  timeout --kill-after=10 "${LIMIT[$part]}" bash -c "${CMD[$part]}" > "$OUT/logs/$part.log" 2>&1
  rc=$?
  seconds=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  case $rc in 0) status=ok ;; 124|137) status=timeout ;; *) status=failed ;; esac
  printf '{"part": "%s", "status": "%s", "rc": %d, "seconds": %s, "limit_s": %d}\n' \
    "$part" "$status" "$rc" "$seconds" "${LIMIT[$part]}" >> "$OUT/parts/status.jsonl"
  echo "[$part] $status in ${seconds}s (limit ${LIMIT[$part]}s; log $OUT/logs/$part.log)"
done

"$PY" benchmarks/gpu_check_summary.py "$OUT" && echo "figures: $OUT/gpu_check.json; summary: $OUT/gpu_check.md"
