#!/usr/bin/env bash
# Learned routing learns: in the same hidden world (agents whose real skill per task type has
# nothing to do with what they declare), [neural] mode "advanced" wastes fewer attempts than
# the heuristic, and its model tracks every (agent, task type) pair's observed success rate.
#   tests/neural/routing_test.sh ROUTING_BENCH
set -u
b=$(${1:?usage: routing_test.sh ROUTING_BENCH} basic 6000 1200 3 2>/dev/null | grep '"figure"')
a=$($1 advanced 6000 1200 3 2>/dev/null | grep '"figure"')
echo "basic:    $(jq -c '{attempt_success_rate, failed_attempts, mean_completion_ms}' <<<"$b")"
echo "advanced: $(jq -c '{attempt_success_rate, failed_attempts, mean_completion_ms, routing}' <<<"$a")"
failed=0
jq -e --argjson b "$b" '.failed_attempts < $b.failed_attempts' <<<"$a" >/dev/null \
  && echo "  ok    advanced placement wastes fewer attempts" || { echo "  FAIL  advanced wastes fewer attempts"; failed=1; }
jq -e '.routing.predicted_pairs == 80 and .routing.model_updates > 5 and .routing.mean_abs_error_success < 0.2' <<<"$a" >/dev/null \
  && echo "  ok    the model predicts all 80 pairs, within 0.2 of their observed success rates" || { echo "  FAIL  model quality"; failed=1; }
jq -e '.completed + .failed_tasks == 6000' <<<"$a" >/dev/null && echo "  ok    every task ended" || { echo "  FAIL  tasks lost"; failed=1; }
exit $failed
