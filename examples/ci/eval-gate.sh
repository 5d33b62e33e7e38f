#!/usr/bin/env bash
# The evaluation job a CI system runs: evaluate a deployment through the gateway with the
# suite, then gate the run; the job's exit status is the gate's.
#
#   GENAI_API_KEY=gk_... GENAI_GATEWAY_URL=http://gateway:4000/v1 examples/ci/eval-gate.sh
#
# Exit status: 0 pass, 1 fail or significant regression, 2 inconclusive, 3 error (the run
# could not be made, no baseline...). Writes $GENAI_EVAL_OUT/junit.xml (one test case per
# check, for the CI's test report) and $GENAI_EVAL_OUT/report.html (self-contained).
#
# Settings (environment):
#   GENAI_API_KEY       a key of the project (required): the evaluation calls as it
#   GENAI_GATEWAY_URL   the gateway's /v1 URL (default http://127.0.0.1:4000/v1)
#   GENAI_PROJECT       the AI Project (default demo)
#   GENAI_EVAL_TARGET   the deployment to evaluate (default docs-bot)
#   GENAI_EVAL_SUITE    the suite (default docs-bot.yaml beside this script)
#   GENAI_EVAL_GATE     the gate: a YAML file of thresholds (default gate.yaml beside it)
#   GENAI_EVAL_BASELINE compare with this eval run, or the newest run on this target
#   GENAI_EVAL_OUT      where the JUnit XML, the report and the gated suite go (default eval-out)
#   GENAI_PYTHON        the python of the environment `genai` is installed in (default:
#                       the one beside `genai`, else python3); it merges suite and gate
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${GENAI_API_KEY:?set GENAI_API_KEY to a key of the project}"
export GENAI_GATEWAY_URL="${GENAI_GATEWAY_URL:-http://127.0.0.1:4000/v1}"
export GENAI_PROJECT="${GENAI_PROJECT:-demo}"
target="${GENAI_EVAL_TARGET:-docs-bot}"
suite="${GENAI_EVAL_SUITE:-$here/docs-bot.yaml}"
gate="${GENAI_EVAL_GATE:-$here/gate.yaml}"
out="${GENAI_EVAL_OUT:-eval-out}"
genai_bin="$(command -v genai)" || { echo "eval-gate: genai is not on PATH" >&2; exit 3; }
python="${GENAI_PYTHON:-$(dirname "$genai_bin")/python}"
[ -x "$python" ] || python=python3
export COLUMNS="${COLUMNS:-160}"  # the score tables, unwrapped in the CI log
mkdir -p "$out" || exit 3

echo "eval-gate: suite $suite + gate $gate → $out/suite.yaml"
"$python" - "$suite" "$gate" "$out/suite.yaml" <<'PY' || exit 3
import sys
from pathlib import Path

import yaml

suite_path, gate_path, out = (Path(p) for p in sys.argv[1:])
suite = yaml.safe_load(suite_path.read_text(encoding="utf-8"))
gate = yaml.safe_load(gate_path.read_text(encoding="utf-8")) or {}
if set(gate) - {"thresholds"}:
    sys.exit(f"eval-gate: {gate_path} may hold only `thresholds`, not {sorted(set(gate) - {'thresholds'})}")
suite["thresholds"] = gate.get("thresholds") or []
data = suite_path.parent / str(suite["dataset"])
if ":" not in str(suite["dataset"]) and data.exists():
    suite["dataset"] = str(data.resolve())  # relative to the suite, wherever the copy goes
out.write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
PY

echo "eval-gate: evaluating $target (project $GENAI_PROJECT) through $GENAI_GATEWAY_URL"
ran="$(genai eval run "$out/suite.yaml" --target "$target" --quiet --report "$out/report.html")"
status=$?
printf '%s\n' "$ran"
if [ $status -ne 0 ]; then
    echo "eval-gate: the evaluation failed (exit $status)" >&2
    exit 3
fi
eval_id="$(printf '%s\n' "$ran" | grep -oE 'eval:[0-9a-f]{12}' | head -n 1)"
if [ -z "$eval_id" ]; then
    echo "eval-gate: no eval run id in the output of genai eval run" >&2
    exit 3
fi

baseline=()
if [ -n "${GENAI_EVAL_BASELINE:-}" ]; then
    baseline=(--baseline "$GENAI_EVAL_BASELINE")
fi
echo "eval-gate: gating $eval_id"
genai eval gate "$eval_id" "${baseline[@]}" --junit "$out/junit.xml"
status=$?
echo "eval-gate: exit $status ($out/junit.xml)"
exit $status
