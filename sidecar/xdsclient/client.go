package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// Protocol is the ADS protocol variant.
type Protocol string

const (
	// Delta is the Incremental xDS protocol (the default).
	Delta Protocol = "delta"
	// SotW is the State-of-the-World protocol.
	SotW Protocol = "sotw"
)

// ParseProtocol accepts "delta" and "sotw".
func ParseProtocol(s string) (Protocol, error) {
	switch p := Protocol(s); p {
	case Delta, SotW:
		return p, nil
	}
	return "", fmt.Errorf("xds protocol %q: want delta or sotw", s)
}

// ApplyFunc receives each new complete config before it is published. An
// error rejects the update (NACK) and keeps the previous config.
type ApplyFunc func(ctx context.Context, cfg *config.Config) error

// Options configure a Client.
type Options struct {
	// NodeID is the xDS node id: the sidecar's proxy service ID in Consul.
	NodeID string
	// ControlPlane is the control plane's gRPC address (host:port).
	ControlPlane string
	// Protocol defaults to Delta.
	Protocol Protocol
	// Logger is required.
	Logger *zap.Logger
	// Registerer receives the client's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Apply, when set, is called with each new complete config, from Run's
	// goroutine, before the config is published.
	Apply ApplyFunc
	// BackoffBase and BackoffMax bound reconnect delays (defaults 250 ms
	// and 30 s).
	BackoffBase, BackoffMax time.Duration
	// DialOptions default to plaintext (the control plane is local or
	// inside the mesh network) with 30 s keepalive pings.
	DialOptions []grpc.DialOption
}

// Applied is what the client runs: the config and the raw resources and
// versions that produced it. It is immutable.
type Applied struct {
	Config *config.Config
	// Resources by type URL, each sorted by name.
	Resources map[string][]proto.Message
	// Versions by type URL (version_info / system_version_info).
	Versions map[string]string
	// At is when this was published.
	At time.Time
}

// Client is the sidecar's ADS client. Create it with New and run it with
// Run.
type Client struct {
	opts    Options
	log     *zap.Logger
	m       *metrics
	backoff backoff
	applied atomic.Pointer[Applied]
	status  streamStatus
}

// New validates opts and registers the metrics.
func New(opts Options) (*Client, error) {
	if opts.NodeID == "" {
		return nil, errors.New("xdsclient: NodeID is required")
	}
	if opts.ControlPlane == "" {
		return nil, errors.New("xdsclient: ControlPlane is required")
	}
	if opts.Logger == nil {
		return nil, errors.New("xdsclient: Logger is required")
	}
	if opts.Protocol == "" {
		opts.Protocol = Delta
	}
	if _, err := ParseProtocol(string(opts.Protocol)); err != nil {
		return nil, err
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = 250 * time.Millisecond
	}
	if opts.BackoffMax < opts.BackoffBase {
		opts.BackoffMax = max(30*time.Second, opts.BackoffBase)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("xdsclient metrics: %w", err)
	}
	return &Client{
		opts:    opts,
		log:     opts.Logger.With(zap.String("node_id", opts.NodeID), zap.String("control_plane", opts.ControlPlane), zap.String("xds_protocol", string(opts.Protocol))),
		m:       m,
		backoff: backoff{base: opts.BackoffBase, max: opts.BackoffMax},
	}, nil
}

// Current returns the config in force, nil before the first complete one.
func (c *Client) Current() *config.Config {
	if a := c.applied.Load(); a != nil {
		return a.Config
	}
	return nil
}

// Applied returns what the client runs, nil before the first complete
// config.
func (c *Client) Applied() *Applied { return c.applied.Load() }

// Ready reports whether a complete config has been applied.
func (c *Client) Ready() bool { return c.applied.Load() != nil }

// Run connects, keeps the stream up and applies updates until ctx is done.
// It returns nil when ctx ends and an error only when it cannot start.
func (c *Client) Run(ctx context.Context) error {
	dial := c.opts.DialOptions
	if len(dial) == 0 {
		dial = []grpc.DialOption{
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			// Notice a control plane that vanished without closing the
			// connection (host down, network partition) within ~40 s, and
			// reconnect. Our control plane permits pings every 5 s.
			grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		}
	}
	// grpc-go redials a lost connection with its own backoff (up to 120 s
	// by default); bound it like ours so a restarted control plane is
	// found again within BackoffMax.
	dial = append(dial, grpc.WithConnectParams(grpc.ConnectParams{
		Backoff: grpcbackoff.Config{
			BaseDelay: c.opts.BackoffBase, Multiplier: 1.6, Jitter: 0.2, MaxDelay: c.opts.BackoffMax,
		},
		MinConnectTimeout: 5 * time.Second,
	}))
	conn, err := grpc.NewClient(c.opts.ControlPlane, dial...)
	if err != nil {
		return fmt.Errorf("xdsclient: dial %s: %w", c.opts.ControlPlane, err)
	}
	defer conn.Close()
	var last *store // the resources behind the published config
	for attempt := 0; ; attempt++ {
		got, err := c.runStream(ctx, conn, &last)
		if ctx.Err() != nil {
			return nil
		}
		if got {
			attempt = 0
		}
		c.m.streams.WithLabelValues(status.Code(err).String()).Inc()
		wait := c.backoff.delay(attempt)
		c.log.Warn("xds stream down, reconnecting",
			zap.Error(err), zap.Duration("retry_in", wait), zap.Int("attempt", attempt+1),
			zap.Bool("serving_last_config", c.Ready()))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}
