package observe

// Defaults are the rules every chain profile starts from; a profile
// replaces one by declaring a rule of the same name, or drops it with
// disabled: true (a single-validator test chain has no peers, say).
func Defaults() []RuleSpec {
	return []RuleSpec{
		{Name: "no-heartbeat", Verdict: VerdictCritical, When: "missed_heartbeats >= 3",
			Summary: "no heartbeat from the node's agent for 3 intervals"},
		{Name: "app-critical", Verdict: VerdictCritical, When: `has_heartbeat && health == "critical"`,
			Summary: "the agent reports the chain software critical"},
		{Name: "crash-loop", Verdict: VerdictDegraded, When: "has_heartbeat && crash_loop",
			Summary: "a chain component keeps crashing"},
		{Name: "stuck", Verdict: VerdictDegraded, When: "has_heartbeat && !syncing && stalled_for >= stuck_after",
			Summary: "the block height stopped growing while the node is not syncing", Remedy: RemedyRestart},
		{Name: "no-peers", Verdict: VerdictDegraded, When: "sampled && peers == 0",
			Summary: "the node has no peers"},
		{Name: "app-degraded", Verdict: VerdictDegraded, When: `has_heartbeat && health == "degraded" && !syncing`,
			Summary: "the agent reports the chain software degraded (its metrics unreachable, say)"},
		{Name: "behind", Verdict: VerdictSyncing, When: "has_heartbeat && syncing"},
		{Name: "caught-up", Verdict: VerdictOK, When: "has_heartbeat && !syncing"},
	}
}
