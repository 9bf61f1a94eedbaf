#!/usr/bin/env bash
# A real Slurm test of the workflow on this one machine:
#   - installs Debian's slurm-wlm and munge (apt-get) if they are missing;
#   - starts a private munged, slurmctld and slurmd (all config, state and sockets in a temp
#     folder; SLURM_CONF points there, nothing under /etc is touched);
#   - runs a small end-to-end pipeline (30 MovieLens users, SASRec plain and LLM-ESR, 2 epochs,
#     retrieval in two shards)
#     once locally (--cores 2) and once through profiles/slurm (executor slurm);
#   - checks that every step ran as a completed Slurm job and that both runs give the same
#     metrics (field `groups`);
#   - stops the daemons and removes the temp folder on exit.
#
# Usage (as root, from anywhere):   bash tests/slurm/run.sh
# Environment:
#   PYTHON               the project's interpreter [<repo>/.venv/bin/python]
#   SLURM_TEST_BUDGET    seconds the whole test may take, installs included [780]
#   SLURM_TEST_KEEP=1    keep the temp folder (logs, results) for a look afterwards
#   SLURM_TEST_ARGS      extra snakemake options for the Slurm run, e.g. "--verbose"
# Needs snakemake-executor-plugin-slurm==2.8.0 in that interpreter's environment.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PY=${PYTHON:-$REPO/.venv/bin/python}
BUDGET=${SLURM_TEST_BUDGET:-780}
TARGETS=(results/mini_sasrec_metrics.json results/mini_sasrec_base_metrics.json)
# The rules that must have run as Slurm jobs (others may too: aggregate_default, which does
# not inherit `localrule: True` from aggregate through `use rule`).
SLURM_RULES="ingest item_prompts user_prompts embed pca retrieve_index retrieve_shard retrieve split train evaluate"
CPUS=2

STARTED=$SECONDS
log() { echo "[slurm-test +$((SECONDS - STARTED))s] $*"; }
fail() {
    echo "" >&2
    echo "SLURM TEST FAILED: $*" >&2
    exit 1
}
left() { echo $((BUDGET - (SECONDS - STARTED))); }
# bounded CMD...: run CMD with at most MAX seconds, and never past the test's budget.
bounded() {
    local max=$1
    shift
    local rest
    rest=$(left)
    ((rest > 5)) || fail "time budget of ${BUDGET}s used up before: $*"
    ((max < rest)) || max=$rest
    timeout --kill-after=15 "$max" "$@"
}

# ---------------------------------------------------------------- preconditions
[[ $(id -u) == 0 ]] || fail "run as root: the test starts munged, slurmctld and slurmd (SlurmUser=root) and may apt-get install them"
[[ -x $PY ]] || fail "no Python at $PY (run 'make venv', or set PYTHON=...)"
"$PY" -c "import snakemake_executor_plugin_slurm, snakemake_executor_plugin_slurm_jobstep" 2>/dev/null ||
    fail "snakemake-executor-plugin-slurm is not installed for $PY: $PY -m pip install snakemake-executor-plugin-slurm==2.8.0"
(($(nproc) >= CPUS)) || fail "needs at least $CPUS CPUs, this machine has $(nproc)"

missing=()
for tool in slurmctld slurmd sbatch srun squeue sinfo scontrol scancel munged munge unmunge; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
    command -v apt-get >/dev/null || fail "missing ${missing[*]} and no apt-get to install slurm-wlm and munge"
    log "installing slurm-wlm and munge (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    bounded 300 apt-get update -qq || fail "apt-get update failed"
    bounded 400 apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null ||
        fail "apt-get install slurm-wlm munge failed"
fi
SRUN=$(command -v srun)
log "$(slurmctld -V), munge $(munged --version 2>&1 | awk '{print $1}' | sed 's/munge-//')," \
    "snakemake-executor-plugin-slurm $("$PY" -c 'import importlib.metadata as m; print(m.version("snakemake-executor-plugin-slurm"))')"

# ---------------------------------------------------------------- temp folder and cleanup
TMP=$(mktemp -d /tmp/snakemake-slurm-test.XXXXXX) # short: the munge socket path has a length limit
chmod 711 "$TMP" # munged wants the socket's folders traversable
mkdir -p "$TMP"/{etc,state,spool,munge,bin,local,slurm}
chmod 711 "$TMP/munge"
export SLURM_CONF=$TMP/etc/slurm.conf
PIDS=() # daemons we started, in start order

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [[ ${#PIDS[@]} -gt 0 ]] && [[ -f $SLURM_CONF ]]; then
        # Cancel whatever is still queued or running, so no job step outlives slurmd.
        if timeout 10 scancel --quiet --user=root 2>/dev/null; then
            for _ in $(seq 20); do
                [[ -z $(timeout 5 squeue -h -t PD,R,CG -o %i 2>/dev/null) ]] && break
                sleep 1
            done
        fi
    fi
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do # slurmd, slurmctld, then munged
        kill "${PIDS[i]}" 2>/dev/null
        for _ in $(seq 20); do
            kill -0 "${PIDS[i]}" 2>/dev/null || break
            sleep 0.5
        done
        kill -9 "${PIDS[i]}" 2>/dev/null
    done
    if [[ $rc != 0 ]]; then
        echo "---- diagnostics from $TMP" >&2
        for f in "$TMP"/slurm/run.log "$TMP"/local/run.log "$TMP"/slurmctld.log "$TMP"/slurmd.log "$TMP"/munge/munged.log; do
            [[ -s $f ]] && { echo "---- tail $f" >&2; tail -n 40 "$f" >&2; }
        done
        for f in $(find "$TMP/slurm/.snakemake/slurm_logs" "$TMP/slurm/results/logs" -name '*.log' 2>/dev/null | head -n 40); do
            echo "---- tail $f" >&2
            tail -n 15 "$f" >&2
        done
    fi
    if [[ ${SLURM_TEST_KEEP:-0} == 1 ]]; then
        echo "kept $TMP (SLURM_TEST_KEEP=1)" >&2
    else
        rm -rf "$TMP"
    fi
    if [[ $rc == 0 ]]; then
        echo "SLURM TEST PASSED in $((SECONDS - STARTED))s"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- configuration
HOST=$(hostname -s)
MEM_MB=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo) # RealMemory: 90% of RAM
read -r CTLD_PORT SLURMD_PORT < <("$PY" - <<'EOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)

# munge: our own key, socket and daemon, so a munged of the host (if any) is left alone.
head -c 1024 /dev/urandom >"$TMP/munge/munge.key"
chmod 400 "$TMP/munge/munge.key"
MUNGE_SOCKET=$TMP/munge/munge.socket

cat >"$SLURM_CONF" <<EOF
# Single-node test cluster written by tests/slurm/run.sh
ClusterName=snakemaketest
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$TMP/state
SlurmdSpoolDir=$TMP/spool
SlurmctldPidFile=$TMP/slurmctld.pid
SlurmdPidFile=$TMP/slurmd.pid
SlurmctldLogFile=$TMP/slurmctld.log
SlurmdLogFile=$TMP/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# No cgroups (not usable in every container): processes tracked through /proc, no binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# No slurmdbd: sacct cannot work ("Slurm accounting storage is disabled"), so the workflow
# asks squeue for job states, which needs finished jobs kept for a while (MinJobAge).
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=3600
# Refuse at submission what this node can never run (too many CPUs, too much memory, a second
# GPU) instead of leaving it pending for ever.
EnforcePartLimits=ALL
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
# Take CPUs and memory from this file instead of probing the hardware (the same node
# definition then works on any machine, VM or container).
SlurmdParameters=config_overrides
# One pretend GPU (gres.conf), so the profile's GPU requests (--gpus=1) are really scheduled.
GresTypes=gpu
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:1 State=UNKNOWN
PartitionName=test Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
# A GPU needs a device file; /dev/null stands in. Jobs see CUDA_VISIBLE_DEVICES=0 but no
# CUDA device, so torch stays on the CPU (device: auto), as in the local run.
echo "NodeName=$HOST Name=gpu File=/dev/null" >"$TMP/etc/gres.conf"

# snakemake-executor-plugin-slurm-jobstep 0.6.1 removes all SLURM_* variables, SLURM_CONF
# too, before the srun that starts the step inside the job. A cluster whose slurm.conf is at
# the default path (or configless) does not care; this test's is not, so this srun puts it back.
cat >"$TMP/bin/srun" <<EOF
#!/bin/sh
SLURM_CONF='$SLURM_CONF'
export SLURM_CONF
exec '$SRUN' "\$@"
EOF
chmod 755 "$TMP/bin/srun"

# ---------------------------------------------------------------- daemons
log "starting munged, slurmctld, slurmd (ports $CTLD_PORT, $SLURMD_PORT; config $SLURM_CONF)"
munged --foreground --force --key-file="$TMP/munge/munge.key" --socket="$MUNGE_SOCKET" \
    --pid-file="$TMP/munge/munged.pid" --log-file="$TMP/munge/munged.log" \
    --seed-file="$TMP/munge/munged.seed" >"$TMP/munge/munged.out" 2>&1 &
PIDS+=($!)
bounded 30 bash -c "until munge -n -S '$MUNGE_SOCKET' 2>/dev/null | unmunge -S '$MUNGE_SOCKET' >/dev/null 2>&1; do sleep 0.5; done" ||
    fail "munged did not come up (see $TMP/munge/munged.log)"

slurmctld -D -c >"$TMP/slurmctld.out" 2>&1 &
PIDS+=($!)
bounded 60 bash -c 'until scontrol ping 2>/dev/null | grep -q "is UP"; do sleep 1; done' ||
    fail "slurmctld did not come up: $(tail -n 5 "$TMP/slurmctld.out")"

slurmd -D >"$TMP/slurmd.out" 2>&1 &
PIDS+=($!)
# shellcheck disable=SC2016 # expanded by the inner bash
bounded 90 bash -c 'until [[ $(sinfo -h -N -o %T 2>/dev/null) == idle ]]; do sleep 1; done' ||
    fail "node $HOST not idle in sinfo: $(sinfo -h -N -o '%T %E' 2>&1); $(tail -n 5 "$TMP/slurmd.out")"
log "node $HOST idle: $(sinfo -h -N -o 'CPUs=%c Memory=%mMB Gres=%G Partition=%P')"

# smoke test: one job step through sbatch and srun
bounded 60 sbatch --quiet --wait -t 1 --mem 100 -c 1 -o "$TMP/smoke.out" \
    --wrap "PATH='$TMP/bin':\$PATH srun -n1 hostname" ||
    fail "a trivial sbatch/srun job failed: $(cat "$TMP/smoke.out" 2>/dev/null)"

# ---------------------------------------------------------------- the pipeline, twice
# The 30-user slice and config of tests/test_workflow.py::write_mini, with one backbone, one
# seed and the plain and LLM-ESR variants.
for run in local slurm; do
    (cd "$TMP/$run" && "$PY" - "$REPO" <<'EOF') || fail "could not write the mini dataset"
import sys
from pathlib import Path
import yaml
sys.path.insert(0, str(Path(sys.argv[1]) / "tests"))
from test_workflow import write_mini
write_mini(Path("."))
config = yaml.safe_load(Path("test.yaml").read_text())
config["targets"] = {"datasets": ["mini"], "backbones": ["sasrec"], "variants": ["base", "llmesr"]}
config["train"] = {"max_epochs": 2, "patience": 2, "seeds": [42]}
config["retrieve"] = {"shards": 2}  # a sharded step: the index job, two query jobs, their merge
Path("test.yaml").write_text(yaml.safe_dump(config))
EOF
done

VENV_BIN=$(dirname "$PY")

log "local run: --cores $CPUS"
rc=0
(cd "$TMP/local" && PATH="$VENV_BIN:$PATH" bounded 420 "$PY" -m snakemake -s "$REPO/Snakefile" "${TARGETS[@]}" \
    --cores "$CPUS" --configfile test.yaml >run.log 2>&1) || rc=$?
((rc != 124 && rc != 137)) || fail "the local run timed out"
((rc == 0)) || fail "the local run failed (log: $TMP/local/run.log)"

# Same thread counts as the local run: --cores 2 caps every rule's threads at 2 there,
# --max-threads 2 does it here (the profile's cpus_per_task follows threads).
# --resources mem_mb caps each job's memory request at what the node has (a no-op on big
# machines). Status by squeue (no slurmdbd here, see the profile), polled every 5 s.
log "Slurm run: --workflow-profile profiles/slurm"
# shellcheck disable=SC2086 # SLURM_TEST_ARGS: several options, split on purpose
(cd "$TMP/slurm" && PATH="$TMP/bin:$VENV_BIN:$PATH" bounded 600 "$PY" -m snakemake -s "$REPO/Snakefile" "${TARGETS[@]}" \
    --workflow-profile "$REPO/profiles/slurm" --max-threads "$CPUS" --resources mem_mb="$MEM_MB" \
    --slurm-status-command squeue --slurm-init-seconds-before-status-checks 5 --slurm-keep-successful-logs \
    ${SLURM_TEST_ARGS:-} --configfile test.yaml >run.log 2>&1) || rc=$?
((rc != 124 && rc != 137)) || fail "the Slurm run timed out (jobs pending or job states not seen; log: $TMP/slurm/run.log)"
((rc == 0)) || fail "the Slurm run failed (log: $TMP/slurm/run.log)"

# ---------------------------------------------------------------- checks
log "checking the Slurm jobs and comparing the metrics"
squeue --states=all -h -O "JobID:|,Name:|,State:|,Comment:|,NumCPUs:|,tres-per-job:|,MinMemory:|,TimeLimit:|,NodeList:" \
    >"$TMP/jobs.txt" || fail "squeue failed"
"$PY" - "$TMP" "$HOST" "$SLURM_RULES" "${TARGETS[@]}" <<'EOF' || fail "checks failed (see above)"
import json
import re
import sys
from pathlib import Path

tmp, host, rules, targets = Path(sys.argv[1]), sys.argv[2], set(sys.argv[3].split()), sys.argv[4:]
problems = []
slurm_log = (tmp / "slurm" / "run.log").read_text()
local_log = (tmp / "local" / "run.log").read_text()

# 1. Every job the run submitted is a COMPLETED Slurm job of this run, on this node.
run_id = re.search(r"SLURM run ID: (\S+)", slurm_log)
if run_id is None:
    sys.exit("the Slurm run's log has no 'SLURM run ID': did it use the slurm executor?")
run_id = run_id.group(1)
submitted = {}
for m in re.finditer(r"has been submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+)/", slurm_log):
    submitted[m.group(1)] = m.group(2)
jobs = {}
for line in (tmp / "jobs.txt").read_text().splitlines():
    jobid, name, state, comment, cpus, tres, mem, limit, nodes = line.split("|")[:9]
    jobs[jobid] = dict(name=name, state=state, comment=comment, cpus=int(cpus), tres=tres, mem=mem, limit=limit, nodes=nodes)
if not rules <= set(submitted.values()):
    problems.append(f"rules never submitted to Slurm: {sorted(rules - set(submitted.values()))}")
if "localrule ingest" in slurm_log or "localrule train" in slurm_log:
    problems.append("the Slurm run ran pipeline steps locally")
print(f"Slurm jobs of run {run_id}:")
for jobid, rule in sorted(submitted.items(), key=lambda kv: int(kv[0])):
    job = jobs.get(jobid)
    if job is None:
        problems.append(f"Slurm job {jobid} ({rule}) unknown to squeue")
        continue
    print(f"  {jobid:>3} {rule:<9} {job['state']:<10} cpus={job['cpus']} mem={job['mem']} time={job['limit']} "
          f"gres={job['tres']} node={job['nodes']} comment={job['comment']}")
    if (job["name"], job["state"], job["nodes"]) != (run_id, "COMPLETED", host):
        problems.append(f"Slurm job {jobid} ({rule}): {job}")
    if not job["comment"].startswith(f"rule_{rule}"):
        problems.append(f"Slurm job {jobid}: comment {job['comment']} is not rule {rule}")
    wants_gpu = rule in ("embed", "train")
    if wants_gpu != ("gpu" in job["tres"]):
        problems.append(f"Slurm job {jobid} ({rule}): GPU request {job['tres']!r}, expected {'one' if wants_gpu else 'none'}")

# 2. Each step ran with the same number of threads in both runs.
def threads(text):
    return sorted(re.findall(r"python -m pipeline (\w+) .*?--threads (\d+)", text))
if threads(slurm_log) != threads(local_log) or not threads(local_log):
    problems.append(f"threads differ: local {threads(local_log)}, Slurm {threads(slurm_log)}")
else:
    print("threads per step, both runs:", ", ".join(f"{s}={n}" for s, n in threads(local_log)))

# 3. Same metrics.
for target in targets:
    local = json.loads((tmp / "local" / target).read_text())
    slurm = json.loads((tmp / "slurm" / target).read_text())
    if local["groups"] != slurm["groups"]:
        problems.append(f"{target}: groups differ\n  local {local['groups']}\n  Slurm {slurm['groups']}")
    else:
        print(f"{target}: groups identical (overall HR@10 {local['groups']['overall']['HR@10']}, "
              f"NDCG@10 {local['groups']['overall']['NDCG@10']})")

if problems:
    print("\n".join(["PROBLEMS:", *problems]), file=sys.stderr)
    sys.exit(1)
EOF
