#!/usr/bin/env bash
# A codec trained for a fixed time budget on the default corpus, measured on voices it never heard.
#
#   bench/codec_quality.sh [OUT]        # run again to continue: each call trains at most CHUNK seconds
#
# 1. builds HOURS of espeak speech (many voices), a small validation set, and MINUTES of Flite
#    speech (`codeclm data flite`: voices the espeak corpus never uses); each is reused when present;
# 2. trains CONFIG for BUDGET of training time in all (Lightning's max_time, kept in the
#    checkpoint): a call that reaches CHUNK seconds gets SIGTERM, saves and exits, and the next
#    call resumes (--ckpt_path auto), so the budget can be spread over commands of limited length;
# 3. when the budget is spent: exports the codec and runs `codeclm eval codec` on the Flite clips
#    at BANDWIDTHS beside Opus (and Codec2), writing OUT/eval/{results.json,report.html}.
# Prints "codec_quality: continue" (rerun) or "codec_quality: done" last.
# Environment: CONFIG (configs/codec/speech16k-6kbps.yaml), HOURS (3), MINUTES (5), BUDGET
# (00:00:25:00, DD:HH:MM:SS), CHUNK (540), BANDWIDTHS (6), CODECLM (.venv/bin/codeclm or codeclm),
# FIT_ARGS (extra `codec fit` options).
set -uo pipefail

OUT="${1:-runs/codec-quality}"
CONFIG="${CONFIG:-configs/codec/speech16k-6kbps.yaml}"
HOURS="${HOURS:-3}"
MINUTES="${MINUTES:-5}"
BUDGET="${BUDGET:-00:00:25:00}"
CHUNK="${CHUNK:-540}"
BANDWIDTHS="${BANDWIDTHS:-6}"
if [[ -z "${CODECLM:-}" ]]; then
    if [[ -x .venv/bin/codeclm ]]; then CODECLM=.venv/bin/codeclm; else CODECLM=codeclm; fi
fi
set -e
mkdir -p "$OUT"
[[ -f "$OUT/speech/shards.json" ]] || $CODECLM data speech --out "$OUT/speech" --hours "$HOURS"
[[ -f "$OUT/speech-val/shards.json" ]] || $CODECLM data speech --out "$OUT/speech-val" --hours 0.05 --seed 17 --speakers 8
[[ -f "$OUT/flite/shards.json" ]] || $CODECLM data flite --out "$OUT/flite" --minutes "$MINUTES"

if [[ ! -f "$OUT/train/finished" ]]; then
    set +e
    # shellcheck disable=SC2086
    timeout -s TERM -k 120 "$CHUNK" $CODECLM codec fit --config "$CONFIG" \
        --data.shards "$OUT/speech" --data.val_shards "$OUT/speech-val" \
        --trainer.default_root_dir "$OUT/train" --trainer.logger.init_args.save_dir "$OUT/train" \
        --trainer.logger.init_args.version run --trainer.max_time "$BUDGET" --ckpt_path auto ${FIT_ARGS:-}
    rc=$?
    set -e
    if [[ $rc -eq 124 ]]; then
        echo "codec_quality: continue (stopped after ${CHUNK}s with a checkpoint; run again)"
        exit 0
    fi
    [[ $rc -eq 0 ]] || { echo "codec_quality: training failed ($rc)" >&2; exit $rc; }
    touch "$OUT/train/finished"
fi

ckpt=$(find "$OUT/train" -name last.ckpt -path '*checkpoints*' | head -1)
[[ -n "$ckpt" ]] || { echo "codec_quality: no last.ckpt under $OUT/train" >&2; exit 1; }
$CODECLM codec export "$ckpt" "$OUT/export"
$CODECLM eval codec --codec "$OUT/export" --audio "$OUT/flite" --bandwidths "$BANDWIDTHS" --max-clips 40 \
    --clip-seconds 10 --out "$OUT/eval" --quiet
echo "codec_quality: done ($OUT/eval/results.json)"
