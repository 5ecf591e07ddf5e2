"""Generate the small sample traces shipped here (run: python scenarios/traces/generate.py).

Nothing is downloaded: these are synthetic traces in the two formats the
simulator reads, drawn from a seeded RNG so that they are the same every time.

* google2011-sample.csv.gz: Google cluster-usage 2011 task_events (13 columns,
  no header, microsecond times, requests normalised to the largest machine):
  60 jobs of 1-20 tasks over 30 minutes, each task SUBMIT -> SCHEDULE ->
  FINISH (a few FAIL), some resubmitted after an EVICT.
* sample.swf: Standard Workload Format 2.2, 300 jobs over an hour.
"""

import gzip
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))


def google2011(path: str, seed: int = 2011) -> None:
    rng = random.Random(seed)
    rows = []
    t0 = 600_000_000  # the 2011 trace starts at 600 s
    for job in range(60):
        job_id = 6_000_000_000 + job * 1117
        submit = t0 + int(rng.uniform(0, 1800) * 1e6)
        cpu = round(rng.choice([0.0125, 0.025, 0.03125, 0.0625, 0.125]), 5)
        mem = round(rng.uniform(0.005, 0.06), 5)
        for index in range(rng.randint(1, 20)):
            s = submit + int(rng.uniform(0, 5) * 1e6)
            sched = s + int(rng.expovariate(1 / 2.0) * 1e6)
            run = int(rng.uniform(30, 600) * 1e6)
            user = f"user{job % 7}"
            rows.append((s, 0, job_id, index, "", 0, user, 2, 0, cpu, mem, 0.0001, 0))
            machine = 100000 + rng.randint(0, 999)
            rows.append((sched, 0, job_id, index, machine, 1, user, 2, 0, cpu, mem, 0.0001, 0))
            if rng.random() < 0.05:  # evicted, resubmitted, then finishes
                ev = sched + run // 3
                rows.append((ev, 0, job_id, index, machine, 2, user, 2, 0, cpu, mem, 0.0001, 0))
                rows.append((ev + 1, 0, job_id, index, "", 0, user, 2, 0, cpu, mem, 0.0001, 0))
                rows.append((ev + 2_000_000, 0, job_id, index, machine, 1, user, 2, 0, cpu, mem, 0.0001, 0))
                sched = ev + 2_000_000
            end_event = 3 if rng.random() < 0.04 else 4
            rows.append((sched + run, 0, job_id, index, machine, end_event, user, 2, 0, cpu, mem, 0.0001, 0))
    rows.sort(key=lambda r: (r[0], r[2], r[3]))
    with gzip.GzipFile(path, "wb", mtime=0) as fh:
        for r in rows:
            fh.write((",".join("" if v == "" else str(v) for v in r) + "\n").encode())


def swf(path: str, seed: int = 2022) -> None:
    rng = random.Random(seed)
    lines = ["; Version: 2.2", "; Computer: a synthetic cluster for Impresario's tests",
             "; MaxProcs: 32", "; MaxJobs: 300", "; UnixStartTime: 0"]
    t = 0
    for job in range(1, 301):
        t += int(rng.expovariate(1 / 12.0))
        procs = rng.choice([1, 1, 2, 4, 8, 16])
        run = int(rng.uniform(20, 900))
        mem_kb = rng.choice([262144, 524288, 1048576])
        status = 1 if rng.random() > 0.05 else rng.choice([0, 5])
        fields = [job, t, int(rng.uniform(0, 60)), run, procs, -1, mem_kb, procs, run * 2, mem_kb,
                  status, rng.randint(1, 20), rng.randint(1, 4), -1, 1, 1, -1, -1]
        lines.append(" ".join(str(f) for f in fields))
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    google2011(os.path.join(HERE, "google2011-sample.csv.gz"))
    swf(os.path.join(HERE, "sample.swf"))
