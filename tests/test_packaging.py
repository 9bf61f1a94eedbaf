"""The conda env file mirrors pyproject's pins; torch stays pinned exactly."""

import re
import tomllib

import yaml
from packaging.requirements import Requirement

from conftest import REPO


def pins(requirements):
    return {Requirement(r).name.lower(): str(Requirement(r).specifier) for r in requirements}


def test_conda_env_lists_the_same_pinned_packages():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((REPO / "envs" / "pipeline.yaml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pins(pip_section) == pins(project["dependencies"])
    assert all(spec.startswith("==") for spec in pins(project["dependencies"]).values())


def test_torch_is_pinned_exactly():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "torch==2.13.0" in project["dependencies"]


def test_ci_runs_the_readme_test_command():
    assert "make test" in (REPO / ".ci" / "run").read_text()
    assert "make test" in (REPO / "README.md").read_text()


def rule_threads():
    """{rule name: threads} read from rules/*.smk (None: no `threads:`; a rule made with `use rule
    X as Y` has X's unless it sets its own; rules/embed.smk defines `embed` twice, as the encoder
    or as the shards' merge, and the encoder's count is kept)."""
    threads, current = {}, None
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for line in smk.read_text().splitlines():
            if m := re.match(r"\s*(?:rule (\w+):|use rule (\w+) as (\w+))", line):
                current = m.group(1) or m.group(3)
                threads.setdefault(current, threads.get(m.group(2)))
            elif (m := re.match(r"\s*threads: (\d+)$", line)) and current:
                threads[current] = int(m.group(1))
    return threads


def test_the_slurm_profile_names_real_rules_with_their_thread_counts():
    # A renamed rule silently loses its Slurm requests (it falls back to default-resources).
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    rules = rule_threads()
    assert set(profile["set-threads"]) <= set(rules), set(profile["set-threads"]) - set(rules)
    assert set(profile["set-resources"]) <= set(rules), set(profile["set-resources"]) - set(rules)
    assert {name: rules[name] for name in profile["set-threads"]} == profile["set-threads"]
    # Every step the workflow runs as a cluster job with more than one thread has its entry.
    assert {name for name, n in rules.items() if n and n > 1} - {"recommend"} <= set(profile["set-threads"])
