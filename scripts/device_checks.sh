#!/usr/bin/env bash
# The checks of a session that is lent a GPU machine (the tool library's `device`), as one prepared
# command that fits one call (`bash scripts/device_prepare.sh` here first, then
#   run(command="bash scripts/device_checks.sh", carry=[".whl", ".authors"], timeout_s=600)).
#
# Phases (arguments; default setup graphtest grid, in this order — `tests` and `quick` ran on
# 2026-12-04, benchmarks/README.md "The graphed update on a GPU"; run them again after a change):
#   setup  install the carried wheels (.whl) into /tmp/site
#   tests  the CUDA-only tests (they are skipped on our CPU machines), graphtest among them
#   graphtest  tests/test_cuda_graph.py alone (≈ 40 s): the grid trains with train.cuda_graph
#          only where it passed
#   bench  update timings on the GPU: ours (bench_learner, fp32 and bf16) and, with .authors
#          carried, ours beside the authors' update (bench_against_authors); acting with the env
#   quick  instead of bench, for a call with little device time left: ours eager and graphed
#          (fp32, 1 thread, Atari and MinAtar; DrQ-SAC for DMC) and the side-by-side with the
#          authors' update, eager and graphed
#   grid   sweeps on the GPU (GRID=atari, the default, minatar, atari-rr2 or bf16; see GRIDS), stopped
#          (as Ctrl-C: checkpointed, resumable) at the deadline; a second call
#          `bash scripts/device_checks.sh setup grid` on the still-warm machine resumes them
#          (runs/ is git-ignored, so it stays there between calls)
# Everything lands in $OUT (at most 8 files come back): device.log, bench.jsonl, grid.tar.gz (each
# run's CSVs, JSON and logs, no checkpoints), progress.txt (each run's last train.csv row).
# DEADLINE_S (default 580, for timeout_s=600) bounds the whole command, in seconds from its start.
set -uo pipefail
start=$SECONDS
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
OUT="${OUT:-$root/runs/device-out}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/device.log") 2>&1
deadline=${DEADLINE_S:-580}
python="${PYTHON:-python3}"
device="${DEVICE:-cuda}"
phases=("$@")
[[ ${#phases[@]} -gt 0 ]] || phases=(setup graphtest grid)
left() { echo $((deadline - (SECONDS - start))); }
say() { echo "[device_checks $((SECONDS - start))s] $*"; }

export PYTHONPATH="$root/src:$root/benchmarks${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

setup() {
    if compgen -G ".whl/*.whl" >/dev/null; then
        "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site .whl/*.whl || return 1
    fi
    [[ -d /tmp/site ]] && export PYTHONPATH="$PYTHONPATH:/tmp/site"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
    # versions, the GPUs torch sees, and each suite's environment made here (DMC needs no GPU run)
    "$python" -m plastic.cli info || say "plastic info: a suite is not usable here (above)"
    lscpu | grep -E "Model name|^CPU\(s\)"
}

tests() {
    "$python" -m pytest -q -p no:cacheprovider tests/test_devices.py tests/test_precision.py
    graphtest
}
graphtest() {
    # The graphed update is used below only where it computes the eager update here.
    if "$python" -m pytest -q -p no:cacheprovider tests/test_cuda_graph.py && [[ $device == cuda* ]]; then
        mkdir -p runs/device && touch runs/device/.cuda_graph_ok
    else
        say "the graphed update was not confirmed on a GPU here (tests/test_cuda_graph.py failed, or no CUDA device): the grid runs without train.cuda_graph"
    fi
}
graph_ok() { [[ -f runs/device/.cuda_graph_ok ]]; }  # kept on a warm machine for the second call
# The benches time the graphed update on any GPU (a timing is valid even where the comparison test
# failed); only the grid's training runs wait for graph_ok.
on_gpu() { [[ $device == cuda* ]]; }

bench() {
    local bench_out="$OUT/bench.jsonl" preset precision graph_flag=()
    on_gpu && graph_flag=(--cuda-graph)
    for preset in drq plastic; do
        for precision in fp32 bf16; do
            "$python" benchmarks/bench_learner.py --device "$device" --preset "$preset" --rounds 4 \
                --per-round 10 --set "train.precision=$precision" | tee -a "$bench_out"
            on_gpu && "$python" benchmarks/bench_learner.py --device "$device" --preset "$preset" \
                --rounds 4 --per-round 10 --set "train.precision=$precision" --set train.cuda_graph=true \
                --no-reference | tee -a "$bench_out"
        done
        "$python" benchmarks/bench_acting.py --device "$device" --preset "$preset" --env --steps 300 \
            | tee -a "$bench_out"
    done
    if [[ -f .authors/atari/src/agents/base.py ]]; then
        for precision in fp32 bf16; do
            PLASTIC_AUTHORS_DIR="$root/.authors" "$python" benchmarks/bench_against_authors.py \
                --device "$device" --threads 1 --rounds 4 --per-round 5 --precision "$precision" \
                "${graph_flag[@]}" --markdown | tee -a "$bench_out"
        done
    else
        say "no .authors carried: the side-by-side benchmark is skipped"
    fi
}

quick() {
    local bench_out="$OUT/bench.jsonl" suite preset graph
    for suite in atari minatar; do
        for preset in drq plastic; do
            for graph in false true; do
                on_gpu || [[ $graph == false ]] || continue
                "$python" benchmarks/bench_learner.py --device "$device" --suite "$suite" --preset "$preset" \
                    --threads 1 --rounds 4 --per-round 20 --no-reference --set "train.cuda_graph=$graph" \
                    | tee -a "$bench_out"
            done
        done
    done
    # acting one observation (training's acting), eager and graphed, against the straightforward
    # reference; and with the emulator, graphed
    for graph in false true; do
        on_gpu || [[ $graph == false ]] || continue
        "$python" benchmarks/bench_acting.py --device "$device" --preset plastic --threads 1 \
            --set "train.cuda_graph=$graph" | tee -a "$bench_out"
    done
    on_gpu && "$python" benchmarks/bench_acting.py --device "$device" --preset plastic --threads 1 \
        --env --no-reference --set train.cuda_graph=true | tee -a "$bench_out"
    # DrQ with SAC (DMC) at batch 512: eager against graphed, pixels and state (no MuJoCo needed)
    on_gpu && "$python" benchmarks/bench_dmc.py --skip-env --device "$device" --cuda-graph \
        --rounds 3 --updates 5 | tee -a "$bench_out"
    [[ -f .authors/atari/src/agents/base.py ]] || { say "no .authors carried"; return 0; }
    for graph in "" --cuda-graph; do
        on_gpu || [[ -z $graph ]] || continue
        PLASTIC_AUTHORS_DIR="$root/.authors" "$python" benchmarks/bench_against_authors.py \
            --device "$device" --threads 1 --rounds 4 --per-round 5 $graph --markdown | tee -a "$bench_out"
    done
}

# The grids of issue 14. Each entry: OUT-NAME|sweep arguments; GRIDS_OVERRIDE="..." replaces the
# list (entries separated by ';'). Runs share one GPU, and a run that does not finish before the
# machine goes back is lost (a machine does not outlive the session; checkpoints stay on it).
# With the graph on an H200 an Atari update is 2.1 ms (drq) / 4.0 ms (plastic) and a step of
# acting with the emulator 0.7 ms: a drq run at replay ratio 1 ≈ 3.4 min of updates + 1.2 min of
# acting + ≈ 1 min of final evaluation and checkpoints ≈ 5.5-6 min alone. Two side by side share
# the GPU (≈ 7.5-8.5 min for both, estimated): too close to a call's ≈ 8 min of grid for a first
# try, so the Atari grids run one run at a time by default (WORKERS_PER_GRID=2 to try two).
# A plastic run at ratio 2 (≈ 13 min of updates) fits no session's 15 minutes. Eager, nothing
# Atari fits.
# GRID=atari (default): DrQ(eps)'s own setting (drq, replay ratio 1), the seeds our CPU machines
#   leave to a GPU (scripts/evidence.sh runs seed 0 of six games, then seed 1 of Pong and
#   Breakout, then ratio 2): RR1_GAMES, RR1_SEEDS, default pong,breakout seed 2 (their seed 0 fell
#   at the 4th and 9th percentile); then the other games' seeds 1-2.
# GRID=atari-rr2: the ratio-2 runs the CPU's grid has not finished (RR2_GAMES, default boxing and
#   ms_pacman: Breakout's pair is done), drq only by default (RR2_PRESETS): a graphed drq run at
#   ratio 2 needs ≈ 196,000 × 2.1 ms + acting ≈ 9-10 min, a second call on the warm machine to
#   finish it; plastic's ≈ 13 min of updates fit no session.
# GRID=minatar: the MinAtar grid's seed 2 (our CPU machines run seeds 0 and 1), drq and plastic in
#   separate sweeps. Eager, four MinAtar runs shared the H200 at ≈ 68 (drq) and 34 (plastic) env
#   steps/s each; graphed, a plastic run is ≈ 6 min of updates alone.
# GRID=bf16: the bf16 half of benchmarks/bf16-study (its fp32 half is the MinAtar grid), seed
#   BF16_SEEDS (default 2-2: the CPU's MinAtar slot runs seeds 0 and 1).
case "${GRID:-atari}" in
    atari) GRIDS=(
        "atari100k-drq-rr1|atari100k --presets drq --replay-ratio 1 --games ${RR1_GAMES:-pong,breakout} --seeds ${RR1_SEEDS:-2-2}"
    ) ;;
    atari-rr2) GRIDS=(
        "atari100k-rr2|atari100k --presets ${RR2_PRESETS:-drq} --replay-ratio 2 --games ${RR2_GAMES:-boxing,ms_pacman} --seeds ${RR2_SEEDS:-0-0}"
    ) ;;
    minatar) GRIDS=(
        "minatar-drq-seed2|minatar --presets drq --replay-ratio 2 --seeds 2-2"
        "minatar-plastic-seed2|minatar --presets plastic --replay-ratio 2 --seeds 2-2"
    ) ;;
    bf16) GRIDS=(
        "bf16-study-drq|minatar --presets drq --replay-ratio 2 --seeds ${BF16_SEEDS:-2-2} --set train.precision=bf16"
        "bf16-study-plastic|minatar --presets plastic --replay-ratio 2 --seeds ${BF16_SEEDS:-2-2} --set train.precision=bf16"
    ) ;;
    *) echo "GRID=${GRID}: valid are atari, atari-rr2, minatar, bf16" >&2; exit 2 ;;
esac
[[ -n "${GRIDS_OVERRIDE:-}" ]] && IFS=';' read -r -a GRIDS <<<"$GRIDS_OVERRIDE"
grid() {
    local seconds pids=() spec name args graph_set=() workers
    workers="${WORKERS_PER_GRID:-$([[ ${GRID:-atari} == atari* ]] && echo 1 || echo 2)}"
    graph_ok && graph_set=(--set train.cuda_graph=true)
    seconds=$(( $(left) - 40 ))  # leave time to stop, checkpoint and pack
    if (( seconds < 60 )); then say "no time left for the grid"; return 0; fi
    say "grid: ${seconds}s"
    for spec in "${GRIDS[@]}"; do
        name="${spec%%|*}" args="${spec#*|}"
        # shellcheck disable=SC2086
        timeout -s INT -k 30 "$seconds" "$python" -m plastic.cli sweep $args \
            --device "$device" --workers "$workers" --threads 1 "${graph_set[@]}" \
            --out "runs/device/$name" >>"$OUT/sweeps.log" 2>&1 &
        pids+=($!)
    done
    wait "${pids[@]}"
    tail -n 4 "$OUT/sweeps.log"
    for csv in runs/device/*/*/*/*/train.csv; do
        [[ -f "$csv" ]] || continue
        local run="${csv%/train.csv}"
        printf '%s %s %s\n' "${run#runs/device/}" "$([[ -f $run/summary.json ]] && echo finished || echo running)" \
            "$(tail -n 1 "$csv")"
    done | tee "$OUT/progress.txt"
    tar -czf "$OUT/grid.tar.gz" --exclude='checkpoint.pt*' --exclude=tb --exclude='*.pt' runs/device
}

for phase in "${phases[@]}"; do
    case "$phase" in
        setup|tests|graphtest|bench|quick|grid) say "$phase (${deadline}s budget, $(left)s left)"; "$phase" || say "$phase FAILED" ;;
        *) echo "unknown phase $phase; valid: setup tests graphtest bench quick grid" >&2; exit 2 ;;
    esac
done
say "done"
