"""What no schema checks in deploy/: the sweep Job, its merge Job and the CI matrix example
agree on the number of shards, and every shard writes the folder the merge reads.

    .venv/bin/python3 tests/deploy_agrees.py    (PyYAML comes with kubernetes-validate)
"""
import sys

import yaml


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def container(job):
    return job["spec"]["template"]["spec"]["containers"][0]


def env(c, name):
    for e in c.get("env", []):
        if e["name"] == name:
            return e.get("value")
    return None


sweep = [d for d in load("deploy/sweep-job.yaml") if d["kind"] == "Job"][0]
spec = sweep["spec"]
if spec.get("completionMode") != "Indexed":
    fail("deploy/sweep-job.yaml: the Job is not completionMode: Indexed")
shards = spec["completions"]
c = container(sweep)
if env(c, "WEKASIM_SHARD_COUNT") != str(shards):
    fail(f"deploy/sweep-job.yaml: WEKASIM_SHARD_COUNT is {env(c, 'WEKASIM_SHARD_COUNT')!r}, completions {shards}")
args = c["args"]
if args[0] != "sweep" or "--out" not in args:
    fail(f"deploy/sweep-job.yaml: the container does not run `sweep ... --out DIR`: {args}")
out = args[args.index("--out") + 1]
if "$(JOB_COMPLETION_INDEX)" not in out:
    fail(f"deploy/sweep-job.yaml: --out {out} does not name the shard by $(JOB_COMPLETION_INDEX)")
if "resources" not in c or "requests" not in c["resources"]:
    fail("deploy/sweep-job.yaml: the container has no resource requests")
if "activeDeadlineSeconds" not in sweep["spec"]["template"]["spec"]:
    fail("deploy/sweep-job.yaml: no per-shard (pod) deadline")

merge = load("deploy/merge-job.yaml")[0]
margs = container(merge)["args"]
folders = [a for a in margs[1:margs.index("--out")]]
want = [out.replace("$(JOB_COMPLETION_INDEX)", str(i)) for i in range(shards)]
if folders != want:
    fail(f"deploy/merge-job.yaml merges {folders}, but the sweep Job writes {want}")
if container(merge)["image"] != c["image"]:
    fail("deploy/merge-job.yaml: the merge runs another image than the shards")

ci = load("deploy/ci/github-actions.yml")[0]
shard_job = ci["jobs"]["shard"]
matrix = shard_job["strategy"]["matrix"]["shard"]
if matrix != list(range(len(matrix))):
    fail(f"deploy/ci/github-actions.yml: the matrix is not 0..N-1: {matrix}")
if str(shard_job["env"]["WEKASIM_SHARD_COUNT"]) != str(len(matrix)):
    fail("deploy/ci/github-actions.yml: WEKASIM_SHARD_COUNT is not the number of matrix entries")

print(f"deploy/: {shards} shards in the Job and its merge, {len(matrix)} in the CI matrix: they agree")
