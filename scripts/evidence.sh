#!/usr/bin/env bash
# The long evidence runs of issue 14, kept going across working sessions (a session lasts at most
# 3 hours; an Atari run takes 2-10). Each sweep runs in the background from a git worktree pinned
# at one commit, so that work on main never changes the code a run resumes with.
#
#   bash scripts/evidence.sh start     # (re)start every sweep that is not running: at a session's start
#   bash scripts/evidence.sh status    # each sweep's last progress line, and what runs
#                                      # (every run's state: .venv/bin/plastic status /work/evidence-runs/*/)
#   bash scripts/evidence.sh collect   # copy finished runs' small artifacts into benchmarks/, redo reports
#   bash scripts/evidence.sh pause     # SIGSTOP every sweep (for a quiet timing), then `resume`
#                                      # (a paused run's wall time and that interval's steps/s include the pause)
#   bash scripts/evidence.sh pause SLOT   # SIGSTOP one slot (say, to run the tests beside the other), `resume SLOT`
#   bash scripts/evidence.sh stop      # end every sweep, each run checkpointed where it stands: at a
#                                      # session's end (which kills the runs, even where the machine
#                                      # survives, without that checkpoint), or to `start` again
#                                      # after changing SWEEPS
#   bash scripts/evidence.sh stop SLOT # end one slot's chain (say, to free its core for a check),
#   bash scripts/evidence.sh start SLOT   then start it again alone; slots: atari, minatar
#   bash scripts/evidence.sh beside CMD...   # run CMD (the tests, say) at the lowest CPU priority, so
#                                      # that the sweeps keep their cores; its exit status is CMD's
#
# A sweep resumes its unfinished runs from their checkpoints (if this machine still has them) and
# skips finished ones. On a fresh machine `start` makes the worktree and seeds each sweep directory
# with the runs already committed under benchmarks/, so only the missing runs are trained.
# Settings (environment): EVIDENCE_COMMIT (default below), EVIDENCE_WORKTREE, EVIDENCE_RUNS, PYTHON.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
commit="${EVIDENCE_COMMIT:-397f4e2}"
worktree="${EVIDENCE_WORKTREE:-/work/evidence6}"
runs="${EVIDENCE_RUNS:-/work/evidence-runs}"
python="${PYTHON:-$root/.venv/bin/python}"

# SLOT|NAME|committed runs (relative to the repo)|sweep arguments. A slot is one core: its sweeps
# run one after the other (a sweep whose runs are all finished returns at once, so a restarted
# slot goes on with the first unfinished one), one worker and one thread each (on 2 cores two
# single-thread runs do more work than one run on two threads, benchmarks/README.md; a ratio-2
# Atari pair takes ≈ 16.5 core-hours on two threads, ≈ 11.5 on one each), unless a sweep's own
# arguments say `--threads N` (argparse keeps the last). Two slots may run the same sweep at once:
# a sweep leaves alone the runs another process holds (since 0c5dec7), and a sweep listed again with
# more seeds skips the runs an earlier entry finished (a sweep's seeds are its outermost loop;
# `--seeds 2` is seeds 0-1, `--seeds 2-2` seed 2). What the entries are, in the order they ran:
# - atari: seeds 0-1 of the MinAtar bf16 study (issue 13; benchmarks/bf16-study/), DrQ(eps)'s
#   setting (drq, replay ratio 1) on six Atari games, seeds 0-2 (issue 14's item 2), the 80k
#   Reset-interval run (item 4), then drq against plastic at replay ratio 2 (item 3) on Breakout,
#   Boxing and MsPacman (Pong, which the base hardly learns, left out). The ratio-2 sweep lists
#   plastic first: the slot that finishes Boxing drq takes MsPacman plastic, the longest run left.
# - minatar: every MinAtar game at ratio 2, fp32 (item 4, seeds 0-2) and bf16 (seeds 0-1), the 20k
#   Reset-interval run, ratio-1 seed 2 of three Atari games, then the ratio-2 grid beside the
#   atari slot.
# Why the chains took this order, which runs each machine lost, and the timings behind each choice:
# benchmarks/atari100k/README.md, "How the runs were kept going".
# The pinned commit moves only after `python benchmarks/same_results.py --old <pinned commit>` (from
# main) finds the two computing the same bits; the commits so far and their checks are tabled under
# "Pinned commits" in that README. Atari runs checkpoint every 2,500 steps; `stop` (SIGTERM)
# checkpoints each run at its current step first (plastic.train.stop; since a2243f1): run it before
# a session ends, which otherwise loses each run's steps since its last checkpoint.
# drq against plastic at replay ratio 2: both slots sweep it, so one string serves both
rr2_args="atari100k --games breakout,boxing,ms_pacman --presets plastic,drq --seeds 1 --replay-ratio 2 --set train.checkpoint_interval=2500"
SWEEPS=(
    "atari|bf16-study|benchmarks/bf16-study/runs|minatar --presets drq,plastic --seeds 2 --replay-ratio 2 --set train.precision=bf16"
    "atari|atari100k-drq-rr1|benchmarks/atari100k/drq-rr1|atari100k --games breakout,boxing,pong,kung_fu_master,ms_pacman,seaquest --presets drq --seeds 1 --replay-ratio 1 --set train.checkpoint_interval=2500"
    "atari|atari100k-drq-rr1|benchmarks/atari100k/drq-rr1|atari100k --games pong,breakout --presets drq --seeds 1-1 --replay-ratio 1 --set train.checkpoint_interval=2500"
    "atari|si-reset-80k|benchmarks/minatar-all/reset-interval/80k|minatar --games space_invaders --presets plastic --seeds 2 --replay-ratio 2 --set reset.interval=80000"
    "atari|atari100k-drq-rr1|benchmarks/atari100k/drq-rr1|atari100k --games boxing,kung_fu_master,ms_pacman,seaquest --presets drq --seeds 1-1 --replay-ratio 1 --set train.checkpoint_interval=2500"
    "atari|atari100k-drq-rr1|benchmarks/atari100k/drq-rr1|atari100k --games breakout,kung_fu_master,seaquest --presets drq --seeds 2-2 --replay-ratio 1 --set train.checkpoint_interval=2500"
    "atari|atari100k-rr2|benchmarks/atari100k/rr2|$rr2_args"
    "minatar|bf16-study|benchmarks/bf16-study/runs|minatar --presets drq,plastic --seeds 0-0 --replay-ratio 2 --set train.precision=bf16"
    "minatar|minatar-all|benchmarks/minatar-all/runs|minatar --presets drq,plastic --seeds 2 --replay-ratio 2"
    "minatar|bf16-study|benchmarks/bf16-study/runs|minatar --presets drq,plastic --seeds 2 --replay-ratio 2 --set train.precision=bf16"
    "minatar|minatar-all|benchmarks/minatar-all/runs|minatar --games space_invaders --presets drq,plastic --seeds 2-2 --replay-ratio 2"
    "minatar|minatar-all|benchmarks/minatar-all/runs|minatar --presets drq,plastic --seeds 3 --replay-ratio 2"
    "minatar|si-reset-20k|benchmarks/minatar-all/reset-interval/20k|minatar --games space_invaders --presets plastic --seeds 2 --replay-ratio 2 --set reset.interval=20000"
    "minatar|si-reset-80k|benchmarks/minatar-all/reset-interval/80k|minatar --games space_invaders --presets plastic --seeds 2 --replay-ratio 2 --set reset.interval=80000"
    "minatar|atari100k-drq-rr1|benchmarks/atari100k/drq-rr1|atari100k --games ms_pacman,boxing,pong --presets drq --seeds 2-2 --replay-ratio 1 --set train.checkpoint_interval=2500"
    "minatar|atari100k-rr2|benchmarks/atari100k/rr2|$rr2_args"
)

running() { pgrep -f -- "--out $runs/$1( |$)" >/dev/null; }
# a slot's chain (`bash -c`) names its slot first: two slots may run the same sweep
slot_pids() { pgrep -f -- "^bash -c : evidence-slot=$1 $runs;"; }
slot_running() { slot_pids "$1" >/dev/null; }
process_group() { ps -o pgid= -p "$1" | tr -d ' '; }
group_alive() { pgrep -g "$1" >/dev/null; }
# poll COMMAND... every 0.5 s for 60 s while it succeeds; fail if it still does
wait_while() {
    local waited
    for waited in $(seq 1 120); do
        "$@" || return 0
        sleep 0.5
    done
    ! "$@"
}

signal_sweeps() {  # each slot was started with setsid: its sweeps and their workers share a group
    local spec slot name committed args pid group signalled=" "
    for spec in "${SWEEPS[@]}"; do
        IFS='|' read -r slot name committed args <<<"$spec"
        # once per sweep: a second TERM could land while the first one's checkpoint is being written
        [[ $signalled == *" $name "* ]] && continue
        signalled+="$name "
        for pid in $(pgrep -f -- "plastic.cli sweep .*--out $runs/$name( |$)"); do
            # a sweep that ended since pgrep listed it (say, at the TERM just sent) is passed over
            group="$(process_group "$pid")" || continue
            if [[ -n $group ]] && kill "-$1" -- "-$group" 2>/dev/null; then
                echo "$name: SIG$1 sent to process group $group"
            fi
        done
    done
}
# a slot's chain, its sweep and the sweep's workers share one process group; empty when not running
slot_group() {
    local pid
    pid="$(slot_pids "$1" | head -n 1)" || true
    [[ -z $pid ]] || process_group "$pid"
}
signal_slot() {  # SIGNAL SLOT
    local group
    group="$(slot_group "$2")" || true
    [[ -n $group ]] || { echo "$2: not running"; return 0; }
    kill "-$1" -- "-$group" && echo "$2: SIG$1 sent to process group $group"
}
pause() { if [[ -n ${1:-} ]]; then signal_slot STOP "$1"; else signal_sweeps STOP; fi; }
resume() { if [[ -n ${1:-} ]]; then signal_slot CONT "$1"; else signal_sweeps CONT; fi; }
slots() { for spec in "${SWEEPS[@]}"; do echo "${spec%%|*}"; done | uniq; }
known_slot() {
    [[ -z $1 ]] || slots | grep -qxF -- "$1" || {
        echo "unknown slot '$1'; the slots are: $(slots | tr '\n' ' ')" >&2
        exit 2
    }
}

stop_slot() {
    local group
    group="$(slot_group "$1")" || true
    [[ -n $group ]] || { echo "$1: not running"; return 0; }
    kill -TERM -- "-$group" 2>/dev/null || true
    kill -CONT -- "-$group" 2>/dev/null || true  # a paused sweep gets the TERM once continued
    echo "$1: SIGTERM sent to process group $group"
    # until its sweep has written its checkpoints and exited
    wait_while group_alive "$group" || { echo "$1: still running after 60 s" >&2; exit 1; }
}

stop() {  # a paused sweep gets the TERM once it is continued
    if [[ -n ${1:-} ]]; then
        stop_slot "$1"
        return
    fi
    signal_sweeps TERM
    signal_sweeps CONT >/dev/null
    local spec slot name committed args
    for spec in "${SWEEPS[@]}"; do
        IFS='|' read -r slot name committed args <<<"$spec"
        wait_while running "$name" || { echo "$name: still running after 60 s" >&2; exit 1; }
    done
}

start() {
    if [[ ! -d "$worktree/src/plastic" ]]; then
        git -C "$root" worktree prune
        git -C "$root" worktree add --detach "$worktree" "$commit"
    fi
    local actual spec s_slot name committed args slot chain names
    actual="$(git -C "$worktree" rev-parse --short HEAD)"
    [[ "$(git -C "$root" rev-parse --short "$commit")" == "$actual" ]] || {
        echo "$worktree is at $actual, not $commit: remove it (git worktree remove) or set EVIDENCE_COMMIT" >&2
        exit 2
    }
    mkdir -p "$runs"
    for slot in $(slots); do
        [[ -z ${1:-} || $slot == "$1" ]] || continue
        if slot_running "$slot"; then
            echo "$slot: already running"
            continue
        fi
        chain=": evidence-slot=$slot $runs; " names=""
        for spec in "${SWEEPS[@]}"; do
            IFS='|' read -r s_slot name committed args <<<"$spec"
            [[ $s_slot == "$slot" ]] || continue
            if [[ ! -d "$runs/$name" && -d "$root/$committed" ]]; then
                cp -r "$root/$committed" "$runs/$name"  # finished runs are then skipped
            fi
            names+="${names:+ then }$name"
            chain+="\"$python\" -m plastic.cli sweep --workers 1 --threads 1 $args --out \"$runs/$name\" >>\"$runs/$name.log\" 2>&1; "
        done
        # the subshell's own descriptors too: otherwise `evidence.sh start | tail` waits for the sweep;
        # the closing `:` keeps the chain's bash (and its slot name) alive while its last sweep runs
        (cd "$runs" && PYTHONPATH="$worktree/src" setsid nohup bash -c "$chain:" &) </dev/null >/dev/null 2>&1
        echo "$slot: started from $worktree ($actual): $names; logs in $runs"
    done
}

status() {
    local spec slot name committed args shown=" "
    for spec in "${SWEEPS[@]}"; do
        IFS='|' read -r slot name committed args <<<"$spec"
        [[ $shown == *" $name "* ]] && continue
        shown+="$name "
        printf '%s (%s): %s\n' "$name" "$(running "$name" && echo running || echo stopped)" \
            "$(tail -n 1 "$runs/$name.log" 2>/dev/null || echo 'no log yet')"
    done
}

collect() {
    local spec slot name committed args copied=" "
    for spec in "${SWEEPS[@]}"; do
        IFS='|' read -r slot name committed args <<<"$spec"
        [[ -d "$runs/$name" && $copied != *" $name "* ]] || continue
        copied+="$name "
        "$python" "$root/benchmarks/copy_finished_runs.py" "$runs/$name" "$root/$committed"
    done
    # from the repository's root, so that the report names its runs by paths relative to it
    # DrQ(eps) is the comparison (issue 14); DrQ and DER (a Rainbow with noisy exploration, like
    # our base) place the runs among the other published agents of the same budget
    (cd "$root" && "$python" -m plastic.cli report benchmarks/atari100k/drq-rr1 --baseline drq-eps \
        --baseline drq --baseline der --out benchmarks/atari100k/drq-rr1/report)
    # drq against plastic at replay ratio 2 (DrQ(eps)'s published runs are at ratio 1: not compared)
    if compgen -G "$root/benchmarks/atari100k/rr2/*/*/*/summary.json" >/dev/null; then
        (cd "$root" && "$python" -m plastic.cli report benchmarks/atari100k/rr2 \
            --out benchmarks/atari100k/rr2/report)
    fi
    # MinAtar, every game: drq against plastic (per-game min-max normalised; CIs from 2 seeds on)
    if compgen -G "$root/benchmarks/minatar-all/runs/*/*/*/summary.json" >/dev/null; then
        (cd "$root" && "$python" -m plastic.cli report benchmarks/minatar-all/runs \
            --out benchmarks/minatar-all/report)
    fi
    # space_invaders' Reset interval: the preset's 40k updates (the grid's runs) against 20k and 80k;
    # the labels become "plastic [reset.interval=N]"
    local intervals=()
    for name in 20k 80k; do
        compgen -G "$root/benchmarks/minatar-all/reset-interval/$name/*/*/*/summary.json" >/dev/null &&
            intervals+=("benchmarks/minatar-all/reset-interval/$name")
    done
    if (( ${#intervals[@]} )); then
        (cd "$root" && "$python" -m plastic.cli report benchmarks/minatar-all/runs/space_invaders \
            "${intervals[@]}" --out benchmarks/minatar-all/reset-interval/report)
    fi
    # fp32 against bf16: the labels become "P [train.precision=fp32]" and "P [train.precision=bf16]"
    # on the seeds bf16 has finished only: the fp32 grid's later seeds would unpair the comparison
    local seed fp32=()
    for seed in $(cd "$root" && ls -d benchmarks/bf16-study/runs/*/*/seed*/summary.json 2>/dev/null |
                  awk -F/ '{print $(NF-1)}' | sort -u); do
        fp32+=($(cd "$root" && ls -d benchmarks/minatar-all/runs/*/*/"$seed" 2>/dev/null || true))
    done
    if (( ${#fp32[@]} )); then
        (cd "$root" && "$python" -m plastic.cli report "${fp32[@]}" \
            benchmarks/bf16-study/runs --out benchmarks/bf16-study/report)
    fi
}

# Linux's autogroup scheduling (/proc/sys/kernel/sched_autogroup_enabled) shares the CPU equally
# between sessions, whatever the nice value of their processes: the sweeps run in sessions of their
# own (setsid), and `nice -n 19` alone left a run beside the test suite a third of its CPU. Measured
# on 2026-12-07 (AMD EPYC, 2 vCPUs): a ratio-2 Atari run on two threads got 3,967 CPU ticks in 20 s
# alone, 1,321 beside two busy loops in another session at nice 19, and 3,845 beside the same
# loops in a session whose autogroup is niced to 19, which is what `beside` makes.
beside() {
    (( $# )) || { echo "usage: bash scripts/evidence.sh beside CMD [ARG...]" >&2; exit 2; }
    local pid
    # a background job of this (non-interactive) shell is no group leader: setsid makes the new
    # session in place, so $pid is its leader and its process group
    setsid bash -c '[[ -w /proc/self/autogroup ]] && echo 19 >/proc/self/autogroup; exec nice -n 19 "$@"' \
        beside "$@" &
    pid=$!
    trap 'kill -TERM -- "-$pid" 2>/dev/null' INT TERM
    wait "$pid"
}

[[ -x "$python" ]] || {
    echo "no Python at $python: set up the repository first (bash scripts/setup.sh), or set PYTHON" >&2
    exit 2
}
case "${1:-}" in
    start|stop|pause|resume) known_slot "${2:-}"; "$1" "${2:-}" ;;
    status|collect) "$1" ;;
    beside) shift; beside "$@" ;;
    *) echo "usage: bash scripts/evidence.sh start|stop|pause|resume [SLOT] | status|collect | beside CMD..." >&2; exit 2 ;;
esac
