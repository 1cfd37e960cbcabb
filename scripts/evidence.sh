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
# single-thread runs do more work than one run on two threads; benchmarks/README.md), unless a
# sweep's own arguments say `--threads N`.
# The Atari slot: DrQ(eps)'s setting (drq, replay ratio 1) on four games, then drq against
# plastic at replay ratio 2 (issue 14's item 3), which only a CPU can run to the end (a graphed
# plastic run needs more than a GPU session's 15 minutes). MsPacman and Seaquest joined the ratio-1
# sweep on 2026-12-04 when GPU sessions stopped being lent (≈ 3 h a run here; on a GPU,
# scripts/device_checks.sh GRID=atari, ≈ 5.5-6 min a run, estimated). Seed 1 of Pong and Breakout
# follows (2026-12-05: their seed 0 fell at DrQ(eps)'s 4th and 9th percentile; a second seed says
# whether the base agent has a problem there before ratio 2 spends ≈ 40 core-hours on those games).
# Pong's seed 1 scored -21 (seed 0 -19.3; the authors' own agent -20.43): the base does not learn it, so ratio 2 compares
# drq and plastic on Breakout, Boxing and MsPacman instead (benchmarks/atari100k/README.md).
# The MinAtar slot: every game at ratio 2 in fp32 (issue 14's item 4) and the same runs in bf16
# (issue 13's study, benchmarks/bf16-study/: whether bf16 changes what an agent learns). The bf16
# seed 0 goes first (its fp32 pairs are done; the speed issue comes before the evidence one), then
# fp32's seeds 0-1, then bf16's seed 1 (the speed issue's verdict needs seeds 0 and 1 of both
# halves), then fp32's seed 2 (issue 14's three seeds; added 2026-12-05: no GPU session has come
# to run them) and, after the ratio-2 Atari grid (below), bf16's seed 2. A sweep may appear
# several times with more seeds: a sweep's seeds are its outermost loop, and the runs an earlier
# entry finished are skipped.
# Two slots may run the same sweep at once (since 0c5dec7 a sweep leaves alone the runs another
# process holds): from 2026-12-05 the Atari slot first helps with the bf16 study's seed 1 (the
# speed issue's verdict waits for it; the ratio-2 Atari run it interrupted resumes after), and the
# MinAtar slot, after fp32's seed 2, joins the ratio-2 Atari grid, so that both cores work until
# all is done; bf16's seed 2 comes last (the speed issue's verdict rests on seeds 0 and 1).
# After fp32's seed 2 (added 2026-12-05, evening): space_invaders, the one MinAtar game plastic
# does not win (seeds 0-1 split, lower on average), with the Reset interval halved and doubled
# (20k and 80k updates against the preset's 40k; seeds 0-1), issue 14 item 4's sensitivity run.
# space_invaders' seed 2 runs first of fp32's seed 2 (from 2026-12-05, late): it says whether
# plastic loses that game, which decides how the sensitivity run is read.
# The pinned commit: 50739a6 (worktree /work/evidence2) until 2026-12-05, then a2243f1, after the
# check that `python benchmarks/same_results.py --old 50739a6` automates found the two computing
# the same bits (fresh Atari and MinAtar runs of drq and plastic with Resets, fp32 and bf16, and
# checkpoints of 50739a6 resumed by each): the runs begun at 50739a6 were resumed by a2243f1.
# Then 0c5dec7 (/work/evidence4; shared sweeps), after `same_results.py --old a2243f1` found the same
# bits (resume-minatar-plastic-bf16, minatar-drq-bf16, resume-atari-plastic).
# Then 625806b (/work/evidence5; 2026-12-06), which flushes subnormal floats to zero on the CPU
# (train.flush_denormal: 1.35-1.45x a drq Atari update late in a run), after `same_results.py --old
# 0c5dec7` found the same bits (atari-drq, resume-atari-plastic, minatar-drq, minatar-plastic) and
# `benchmarks/bench_denormals.py` the same parameters, bit for bit, after updates from a drq
# checkpoint with 12 % of its Adam state subnormal, flushed or not.
# Then 397f4e2 (/work/evidence6; 2026-12-06, late), whose summary.json adds cpu_time (the time
# breakdown in CPU seconds, which `evidence.sh pause` does not inflate), after `same_results.py --old
# 625806b` found the same bits (atari-drq, resume-atari-plastic, minatar-drq, minatar-plastic).
# Move it again only after the same check (`same_results.py --old <pinned commit>` from main).
# 2026-12-06: a fresh machine (the checkpoints were gone, Breakout plastic's 57 % lost with them), so
# the Atari slot first takes the 80k Reset-interval runs beside the MinAtar slot's 20k ones: the
# sensitivity run, which fits one session, finishes before the ratio-2 grid, which does not. Then
# the Atari slot runs seed 1 of the other four ratio-1 games (≈ 2.5 h each on one AVX-512 core: a
# run one session can finish if it starts at the session's start), which puts CIs on the base's
# fidelity check; the MinAtar slot goes on with the ratio-2 grid, whose runs need 4.5-9 h each.
# Atari runs checkpoint every 2,500 steps (≈ 1.5 s for the replay's 0.5 GB each time). A run resumes
# from its last checkpoint (a logging key: same results). `stop` (SIGTERM) checkpoints each run at
# its current step first (plastic.train.stop; since a2243f1): run it before a session ends, which
# otherwise loses each run's steps since its last checkpoint.
# The ratio-2 sweep lists plastic first (2026-12-06, late): a sweep starts the first run of its plan
# that is free, so the slot that finishes Boxing drq (≈ 6 h) takes MsPacman plastic (≈ 10 h) and
# the other, after Boxing plastic, MsPacman drq: ≈ 17 h on both cores instead of ≈ 21 h.
# 2026-12-07: the fifth fresh machine in a row (the Boxing pair lost at 49 % and 34 %), so the
# ratio-2 grid runs one run at a time on two threads: a run that needs N sessions on one core
# beside another needs about half as many this way. On one core beside another run, `plastic`
# takes ≈ 7 h and `drq` ≈ 4.5 h, so a pair finished only if the machine survived two session
# boundaries in a row; on two threads (82 and 48 ms an update benched quiet on an AMD EPYC; the
# live Boxing run did 4.6-6.3 steps/s) `plastic` takes ≈ 5-5.5 h, one survived boundary, and `drq`
# ≈ 3 h, about one whole session. The MinAtar slot gives the Atari slot its core: it no longer
# joins the grid, and bf16's seed 2 (not needed for the speed issue's verdict, which rests on
# seeds 0 and 1) is left out.
# 2026-12-07, afternoon: the seventh fresh machine in eight sessions (Boxing plastic's 50 % lost).
# A ratio-2 run finishes only where a machine survives a boundary, so each session first spends
# both cores on runs that one session finishes: seed 2 of the ratio-1 games, two at a time, one
# thread each (drq: 2.0-2.4 h on one EPYC core beside another; the MinAtar slot's chain is done, so it
# takes the second), Breakout and MsPacman first (both seeds below DrQ(eps)'s median), Pong last (it
# learns nothing). The third seed gives the ratio-1 IQM a CI over three runs a game. The ratio-2
# grid resumes after.
# 2026-12-07, evening: the machine survived the 19:55 boundary (Boxing plastic stopped at 12 %) and
# ratio 1 is done, so the ratio-2 grid takes both cores again, one run each on one thread: the two
# threads of one run do ≈ 30 % less work than two single-thread runs side by side (a pair: ≈ 16.5
# core-hours on two threads, ≈ 11.5 on one each). On two threads Boxing's pair ends ≈ 7.5 h after a
# restart from 12 %, side by side ≈ 6 h; the grid ≈ 16 h against ≈ 11.5 h. The plan lists plastic
# first, so the second slot takes Boxing drq and, after it, MsPacman plastic.
SWEEPS=(
    "atari|bf16-study|benchmarks/bf16-study/runs|minatar --presets drq,plastic --seeds 2 --replay-ratio 2 --set train.precision=bf16"
    "atari|atari100k-drq-rr1|benchmarks/atari100k/drq-rr1|atari100k --games breakout,boxing,pong,kung_fu_master,ms_pacman,seaquest --presets drq --seeds 1 --replay-ratio 1 --set train.checkpoint_interval=2500"
    "atari|atari100k-drq-rr1|benchmarks/atari100k/drq-rr1|atari100k --games pong,breakout --presets drq --seeds 1-1 --replay-ratio 1 --set train.checkpoint_interval=2500"
    "atari|si-reset-80k|benchmarks/minatar-all/reset-interval/80k|minatar --games space_invaders --presets plastic --seeds 2 --replay-ratio 2 --set reset.interval=80000"
    "atari|atari100k-drq-rr1|benchmarks/atari100k/drq-rr1|atari100k --games boxing,kung_fu_master,ms_pacman,seaquest --presets drq --seeds 1-1 --replay-ratio 1 --set train.checkpoint_interval=2500"
    "atari|atari100k-drq-rr1|benchmarks/atari100k/drq-rr1|atari100k --games breakout,kung_fu_master,seaquest --presets drq --seeds 2-2 --replay-ratio 1 --set train.checkpoint_interval=2500"
    "atari|atari100k-rr2|benchmarks/atari100k/rr2|atari100k --games breakout,boxing,ms_pacman --presets plastic,drq --seeds 1 --replay-ratio 2 --set train.checkpoint_interval=2500"
    "minatar|bf16-study|benchmarks/bf16-study/runs|minatar --presets drq,plastic --seeds 0-0 --replay-ratio 2 --set train.precision=bf16"
    "minatar|minatar-all|benchmarks/minatar-all/runs|minatar --presets drq,plastic --seeds 2 --replay-ratio 2"
    "minatar|bf16-study|benchmarks/bf16-study/runs|minatar --presets drq,plastic --seeds 2 --replay-ratio 2 --set train.precision=bf16"
    "minatar|minatar-all|benchmarks/minatar-all/runs|minatar --games space_invaders --presets drq,plastic --seeds 2-2 --replay-ratio 2"
    "minatar|minatar-all|benchmarks/minatar-all/runs|minatar --presets drq,plastic --seeds 3 --replay-ratio 2"
    "minatar|si-reset-20k|benchmarks/minatar-all/reset-interval/20k|minatar --games space_invaders --presets plastic --seeds 2 --replay-ratio 2 --set reset.interval=20000"
    "minatar|si-reset-80k|benchmarks/minatar-all/reset-interval/80k|minatar --games space_invaders --presets plastic --seeds 2 --replay-ratio 2 --set reset.interval=80000"
    "minatar|atari100k-drq-rr1|benchmarks/atari100k/drq-rr1|atari100k --games ms_pacman,boxing,pong --presets drq --seeds 2-2 --replay-ratio 1 --set train.checkpoint_interval=2500"
    "minatar|atari100k-rr2|benchmarks/atari100k/rr2|atari100k --games breakout,boxing,ms_pacman --presets plastic,drq --seeds 1 --replay-ratio 2 --set train.checkpoint_interval=2500"
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
