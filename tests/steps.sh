# Sourced by tests/run.sh and .ci/run: `step NAME` starts a named step (printing `== NAME`),
# and on exit each script prints the wall time of its steps, so a slow CI says where its
# time went. Bash's SECONDS counts whole seconds since the script started.
step_names=()
step_seconds=()
step_started=$SECONDS
step() {
  step_finish
  step_names+=("$1")
  step_started=$SECONDS
  echo "== $1"
}
step_finish() {
  if [ "${#step_names[@]}" -gt "${#step_seconds[@]}" ]; then
    step_seconds+=($((SECONDS - step_started)))
  fi
}
step_report() {
  local rc=$? i
  step_finish
  echo "== wall time per step ($1, exit $rc)"
  for i in "${!step_seconds[@]}"; do
    printf '%6d s  %s\n' "${step_seconds[$i]}" "${step_names[$i]}"
  done
  printf '%6d s  in all\n' "$SECONDS"
  return "$rc"
}
