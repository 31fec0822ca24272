package load

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// GRPCResult is one gRPC run.
type GRPCResult struct {
	Calls    int
	Errors   int
	Lat      Latencies
	Duration time.Duration
}

// GRPC calls grpc.health.v1.Health/Check on addr from workers goroutines
// sharing one connection, as fast as they can, for dur.
func GRPC(ctx context.Context, addr string, workers int, dur time.Duration) (GRPCResult, error) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return GRPCResult{}, err
	}
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err = hc.Check(cctx, &healthpb.HealthCheckRequest{})
	cancel()
	if err != nil {
		return GRPCResult{}, fmt.Errorf("first call: %w", err)
	}
	ctx, cancel = context.WithTimeout(ctx, dur)
	defer cancel()
	per := make([][]time.Duration, workers)
	errs := make([]int, workers)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
				if err != nil {
					if ctx.Err() == nil {
						errs[w]++
					}
					continue
				}
				per[w] = append(per[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	r := GRPCResult{Duration: time.Since(start)}
	for w := range workers {
		r.Lat = append(r.Lat, per[w]...)
		r.Errors += errs[w]
	}
	r.Calls = len(r.Lat)
	slices.Sort(r.Lat)
	return r, nil
}
