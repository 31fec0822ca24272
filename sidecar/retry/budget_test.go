package retry

import (
	"testing"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

func TestBudgetLimit(t *testing.T) {
	tests := []struct {
		name   string
		cb     *config.CircuitBreakers
		active int64
		want   int64
	}{
		{"no breakers: Envoy's max_retries 3", nil, 100, 3},
		{"zero max_retries means the default", &config.CircuitBreakers{}, 100, 3},
		{"max_retries", &config.CircuitBreakers{MaxRetries: 7}, 1000, 7},
		{"budget percent of active", &config.CircuitBreakers{RetryBudget: &config.RetryBudget{BudgetPercent: 20, MinRetryConcurrency: 3}}, 100, 20},
		{"budget floor is min_retry_concurrency", &config.CircuitBreakers{RetryBudget: &config.RetryBudget{BudgetPercent: 20, MinRetryConcurrency: 3}}, 5, 3},
		{"budget replaces max_retries", &config.CircuitBreakers{MaxRetries: 1, RetryBudget: &config.RetryBudget{BudgetPercent: 50, MinRetryConcurrency: 1}}, 10, 5},
		{"budget defaults", &config.CircuitBreakers{RetryBudget: &config.RetryBudget{}}, 1000, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := BudgetLimit(tt.cb, tt.active); got != tt.want {
				t.Errorf("BudgetLimit = %d, want %d", got, tt.want)
			}
		})
	}
}
