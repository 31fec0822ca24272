package retry

import "github.com/seed-a778acb4/consulate/sidecar/config"

// Envoy's circuit-breaker defaults for retries.
const (
	DefaultMaxRetries          = 3  // thresholds.max_retries
	DefaultBudgetPercent       = 20 // retry_budget.budget_percent
	DefaultMinRetryConcurrency = 3  // retry_budget.min_retry_concurrency
)

// BudgetLimit is how many retries may be in flight at once on a cluster
// with active requests in flight: the retry budget's budget_percent of
// them, at least min_retry_concurrency; without a budget, max_retries
// (default 3).
func BudgetLimit(cb *config.CircuitBreakers, active int64) int64 {
	if cb == nil {
		return DefaultMaxRetries
	}
	b := cb.RetryBudget
	if b == nil {
		if cb.MaxRetries == 0 {
			return DefaultMaxRetries
		}
		return int64(cb.MaxRetries)
	}
	pct := b.BudgetPercent
	if pct <= 0 {
		pct = DefaultBudgetPercent
	}
	minc := int64(b.MinRetryConcurrency)
	if minc == 0 {
		minc = DefaultMinRetryConcurrency
	}
	return max(int64(float64(active)*pct/100), minc)
}
