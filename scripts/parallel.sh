# Sourced by scripts/sanitize.sh and scripts/fuzz.sh. each_in_parallel FUNCTION ITEM...: FUNCTION ITEM for every
# item, as many at once as there are cores; returns 1 when any of them failed, after all have ended.
each_in_parallel() {
  local function=$1 item pid failed=0
  shift
  local pids=()
  for item in "$@"; do
    while [ "$(jobs -rp | wc -l)" -ge "$(nproc)" ]; do sleep 1; done
    "$function" "$item" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  return "$failed"
}
