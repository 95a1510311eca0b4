package sim

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// captureClient is an otlptrace.Client that keeps what the OTLP exporter
// would have uploaded.
type captureClient struct {
	mu sync.Mutex
	rs []*tracepb.ResourceSpans
}

func (c *captureClient) Start(context.Context) error { return nil }
func (c *captureClient) Stop(context.Context) error  { return nil }

func (c *captureClient) UploadTraces(_ context.Context, rs []*tracepb.ResourceSpans) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rs = append(c.rs, rs...)
	return nil
}

// CaptureResourceSpans runs the simulation in-process and returns exactly
// what the OTLP exporter would have sent, without a network. opts must
// bound the run (Count or Duration).
func CaptureResourceSpans(ctx context.Context, opts Options) ([]*tracepb.ResourceSpans, Stats, error) {
	if opts.Count == 0 && opts.Duration == 0 {
		return nil, Stats{}, errors.New("capture: set Count or Duration, or it never ends")
	}
	client := &captureClient{}
	exp, err := otlptrace.New(ctx, client)
	if err != nil {
		return nil, Stats{}, fmt.Errorf("capture exporter: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(Resource()),
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithBatcher(exp, sdktrace.WithBlocking(), sdktrace.WithMaxExportBatchSize(2048)),
	)
	stats, runErr := Run(ctx, tp, opts)
	// Shutdown flushes the batcher into the client.
	if err := tp.Shutdown(context.WithoutCancel(ctx)); err != nil {
		return nil, stats, fmt.Errorf("capture flush: %w", err)
	}
	if runErr != nil {
		return nil, stats, runErr
	}
	client.mu.Lock()
	defer client.mu.Unlock()
	return client.rs, stats, nil
}

// Capture is CaptureResourceSpans as pdata, the form the gateway's
// receivers hand to the converter.
func Capture(ctx context.Context, opts Options) (ptrace.Traces, error) {
	td, _, err := CaptureTraces(ctx, opts)
	return td, err
}

// CaptureTraces is Capture that also returns the simulation's Stats.
func CaptureTraces(ctx context.Context, opts Options) (ptrace.Traces, Stats, error) {
	rs, stats, err := CaptureResourceSpans(ctx, opts)
	if err != nil {
		return ptrace.NewTraces(), stats, err
	}
	td, err := ToTraces(rs)
	return td, stats, err
}

// ToTraces converts OTLP protobuf ResourceSpans to pdata.
func ToTraces(rs []*tracepb.ResourceSpans) (ptrace.Traces, error) {
	b, err := proto.Marshal(&tracepb.TracesData{ResourceSpans: rs})
	if err != nil {
		return ptrace.NewTraces(), fmt.Errorf("marshal captured spans: %w", err)
	}
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(b)
	if err != nil {
		return ptrace.NewTraces(), fmt.Errorf("unmarshal captured spans: %w", err)
	}
	return td, nil
}
