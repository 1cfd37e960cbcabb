"""`scripts/evidence.sh`, which keeps issue 14's long sweeps going across working sessions: run with
a stand-in for Python that only records its arguments, so nothing trains. A slot's sweeps run one
after the other, a running slot is not started twice (though two slots may run the same sweep), and
a fresh sweep directory is seeded with the runs already committed under benchmarks/."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "evidence.sh"


@pytest.fixture
def evidence(tmp_path):
    calls = tmp_path / "calls.txt"
    release = tmp_path / "release"
    stand_in = tmp_path / "python"
    # each "sweep" records its start and slot (its parent, the slot's chain, names it), waits until
    # the test releases it, and records its end; on SIGTERM it takes a moment to exit, as a real
    # sweep writing its checkpoints does
    stand_in.write_text(f"""#!/bin/bash
trap 'sleep 0.5; exit 143' TERM
out="${{@: -1}} $(tr '\\0' ' ' < /proc/$PPID/cmdline | sed -n 's/.*evidence-slot=\\([a-z]*\\) .*/\\1/p')"
echo "start $out" >> {shlex.quote(str(calls))}
echo "${{@: -1}} $(grep -o -- '--threads [0-9]*' <<< "$*" | tail -n 1)" >> {shlex.quote(str(calls))}.threads
while [[ ! -e {shlex.quote(str(release))} ]]; do sleep 0.05; done
echo "end $out" >> {shlex.quote(str(calls))}
""")
    stand_in.chmod(0o755)
    env = {**os.environ, "PYTHON": str(stand_in), "EVIDENCE_RUNS": str(tmp_path / "runs"),
           # the checkout itself stands in for the pinned worktree (same commit), so no worktree is made
           "EVIDENCE_WORKTREE": str(ROOT), "EVIDENCE_COMMIT": "HEAD"}

    def run(*command: str, status: int = 0, path: str | None = None) -> str:
        """``path``: a directory to put first on PATH (stand-ins for system commands)."""
        run_env = env if path is None else {**env, "PATH": f"{path}:{env['PATH']}"}
        done = subprocess.run(["bash", str(SCRIPT), *command], env=run_env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == status, done.stderr
        return done.stdout if status == 0 else done.stderr

    yield run, calls, release, tmp_path / "runs"
    release.touch()  # let every stand-in end
    time.sleep(0.3)


def short_head() -> str:
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()


def wait_for(predicate, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs the git checkout")
def test_slots_chain_their_sweeps_and_are_not_started_twice(evidence):
    run, calls, release, runs = evidence
    said = run("start")
    # the Atari slot helps with bf16's seed 1 first, then ratio 1's seed 0 of six games, its seed 1
    # of two, space_invaders' 80k Reset interval, seed 1 of the other four ratio-1 games, seed 2
    # of Breakout, KungFuMaster and Seaquest, then ratio 2
    atari = ("bf16-study", "atari100k-drq-rr1", "atari100k-drq-rr1", "si-reset-80k",
             "atari100k-drq-rr1", "atari100k-drq-rr1", "atari100k-rr2")
    assert f"atari: started from {ROOT} " in said and " then ".join(atari) in said
    assert "minatar: started" in said
    # one sweep per slot at a time; both slots begin with the bf16 study, each in its own process
    wait_for(lambda: len(lines(calls)) == 2)
    assert sorted(lines(calls)) == [f"start {runs}/bf16-study atari", f"start {runs}/bf16-study minatar"]
    # while they run, a second start starts nothing, though the slots run the same sweep
    again = run("start")
    assert "atari: already running" in again and "minatar: already running" in again
    status = run("status")
    assert "bf16-study (running)" in status and "atari100k-rr2 (stopped)" in status
    assert status.count("bf16-study (") == 1  # a sweep listed twice in a chain is shown once
    time.sleep(0.3)
    assert len(lines(calls)) == 2
    release.touch()
    wait_for(lambda: lines(calls).count(f"end {runs}/atari100k-rr2 minatar") == 1)
    wait_for(lambda: lines(calls).count(f"end {runs}/atari100k-rr2 atari") == 1)

    def slot_events(slot: str) -> list[str]:
        return [e for e in lines(calls) if e.endswith(f" {slot}")]

    assert slot_events("atari") == [f"{event} {runs}/{name} atari" for name in atari
                                    for event in ("start", "end")]
    # the MinAtar slot: bf16's seed 0, fp32's seeds 0-1, bf16's seed 1, fp32's seed 2 (space_invaders
    # first), space_invaders' Reset-interval runs, ratio-1 seed 2 of MsPacman, Boxing and Pong beside
    # the Atari slot's, then the ratio-2 Atari grid beside the Atari slot (both sweep it at once)
    minatar = ("bf16-study", "minatar-all", "bf16-study", "minatar-all", "minatar-all", "si-reset-20k",
               "si-reset-80k", "atari100k-drq-rr1", "atari100k-rr2")
    assert slot_events("minatar") == [f"{event} {runs}/{name} minatar" for name in minatar
                                      for event in ("start", "end")]
    # one thread a run, the ratio-2 grid's too (argparse would keep a sweep's own --threads, the last)
    threads = set(lines(calls.with_name("calls.txt.threads")))
    assert threads == {f"{runs}/{name} --threads 1" for name in {*atari, *minatar}}
    # the committed runs were copied into the fresh sweep directories, so a sweep skips them
    committed = sorted(p.relative_to(ROOT / "benchmarks/atari100k/drq-rr1")
                       for p in (ROOT / "benchmarks/atari100k/drq-rr1").rglob("summary.json"))
    assert committed and all((runs / "atari100k-drq-rr1" / c).exists() for c in committed)


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs the git checkout")
def test_stop_ends_every_slot_and_start_begins_again(evidence):
    run, calls, release, runs = evidence
    run("start")
    wait_for(lambda: len(lines(calls)) == 2)
    said = run("stop")
    # each slot's running sweep gets one TERM, though the bf16 study is named three times in the
    # chains and runs in both slots
    assert said.count("bf16-study: SIGTERM sent") == 2 and "atari100k" not in said
    status = run("status")
    assert "(running)" not in status and "bf16-study (stopped)" in status
    # nothing of the slots is left: released now, no stand-in finishes and no chain goes on
    release.touch()
    time.sleep(0.5)
    assert lines(calls) == [e for e in lines(calls) if e.startswith("start")] and len(lines(calls)) == 2
    release.unlink()
    assert "atari: started" in run("start")
    wait_for(lambda: len(lines(calls)) == 4)
    assert sorted(lines(calls)[2:]) == sorted(lines(calls)[:2])  # the same sweeps, begun again


def test_stop_passes_over_a_sweep_that_ended_after_it_was_listed(evidence, tmp_path):
    """A sweep can exit between ``pgrep`` listing it and ``ps`` reading its process group (it does,
    at the TERM that ``stop`` sends before the CONT): ``stop`` goes on and exits 0."""
    run, calls, release, runs = evidence
    ended = subprocess.Popen(["true"])
    ended.wait()  # its pid is now no process's
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real_pgrep = subprocess.run(["bash", "-c", "command -v pgrep"], capture_output=True, text=True,
                                check=True).stdout.strip()
    (bin_dir / "pgrep").write_text(f"""#!/bin/bash
[[ "$*" == *"plastic.cli sweep"* ]] && echo {ended.pid}
exec {real_pgrep} "$@"
""")
    (bin_dir / "pgrep").chmod(0o755)
    said = run("stop", path=str(bin_dir))
    assert "SIG" not in said  # nothing was signalled: the one listed sweep was gone


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs the git checkout")
def test_one_slot_stops_and_starts_alone(evidence):
    run, calls, release, runs = evidence
    run("start")
    wait_for(lambda: len(lines(calls)) == 2)
    assert run("stop", "minatar").startswith("minatar: SIGTERM sent")
    # the Atari slot's sweep runs on (its group was not signalled); the MinAtar slot's chain is
    # gone, so nothing of it goes on
    assert "bf16-study (running)" in run("status")
    assert "minatar: not running" in run("stop", "minatar")
    release.touch()
    wait_for(lambda: f"end {runs}/atari100k-drq-rr1 atari" in lines(calls))
    assert not [e for e in lines(calls) if e.startswith("end") and e.endswith(" minatar")]
    release.unlink()
    # atari (running) is not even looked at: no "atari: already running"
    assert run("start", "minatar").splitlines() == [
        f"minatar: started from {ROOT} ({short_head()}): bf16-study then minatar-all then bf16-study "
        "then minatar-all then minatar-all then si-reset-20k then si-reset-80k then atari100k-drq-rr1 "
        f"then atari100k-rr2; logs in {runs}"]
    wait_for(lambda: lines(calls).count(f"start {runs}/bf16-study minatar") == 2)
    assert "unknown slot 'dmc'; the slots are: atari minatar" in run("stop", "dmc", status=2)
    assert "unknown slot '.*'" in run("stop", ".*", status=2)  # a name, not a pattern


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs the git checkout")
def test_one_slot_pauses_and_resumes_alone(evidence):
    run, calls, release, runs = evidence
    run("start")
    wait_for(lambda: len(lines(calls)) == 2)
    assert run("pause", "minatar").startswith("minatar: SIGSTOP sent to process group")
    # released while paused: the Atari slot's sweep sees it and ends, the stopped MinAtar one cannot
    release.touch()
    wait_for(lambda: f"end {runs}/bf16-study atari" in lines(calls))
    time.sleep(0.5)
    assert f"end {runs}/bf16-study minatar" not in lines(calls)
    assert run("resume", "minatar").startswith("minatar: SIGCONT sent to process group")
    wait_for(lambda: f"end {runs}/bf16-study minatar" in lines(calls))
    assert "unknown slot 'dmc'; the slots are: atari minatar" in run("pause", "dmc", status=2)


def test_beside_runs_a_command_at_the_lowest_priority_in_its_own_session(evidence):
    run = evidence[0]
    assert "exit status 3" in run("beside", "sh", "-c", "echo exit status 3 >&2; exit 3", status=3)
    said = run("beside", "sh", "-c", "nice; ps -o sid= -p $$; cat /proc/self/autogroup 2>/dev/null")
    niceness, session, *autogroup = said.splitlines()
    assert niceness == "19"
    # a session of its own, whose autogroup (where the kernel has them) is niced, not the caller's
    assert int(session) != os.getsid(0)
    # the file is empty for a task outside the root cgroup (containers, CI): no autogroup applies
    autogroup_file = Path("/proc/self/autogroup")
    ours = autogroup_file.read_text().split() if autogroup_file.exists() else []
    if ours:
        assert autogroup[0].endswith(" nice 19") and autogroup[0].split()[0] != ours[0]
    assert "usage" in run("beside", status=2)
