package receiver

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/kern-agents/trace-gateway/internal/batcher"
)

// TracesPath is the OTLP/HTTP traces endpoint.
const TracesPath = "/v1/traces"

const (
	contentTypeProto = "application/x-protobuf"
	contentTypeJSON  = "application/json"
)

// ratioFloor is the decompressed size below which the ratio cap does not
// apply: small, repetitive payloads legitimately compress very well.
const ratioFloor = 1 << 20

type httpReceiver struct {
	opts Options
	sink Sink
}

// NewHTTPHandler returns the OTLP/HTTP handler for POST /v1/traces. Other
// paths answer 404 and other methods 405, so it can serve a listener alone
// or be mounted on a mux at TracesPath.
func NewHTTPHandler(opts Options, sink Sink) http.Handler {
	return &httpReceiver{opts: opts.withDefaults(), sink: sink}
}

// freeBufs keeps request body buffers across garbage collections: a
// sync.Pool is emptied by them, and the next body of a few MiB is then a
// fresh, zeroed allocation that the runtime soon hands back to the OS. It
// holds at most maxFreeBufs buffers of at most maxPooledBuf bytes.
var freeBufs = make(chan *bytes.Buffer, maxFreeBufs)

const (
	maxFreeBufs = 8
	// maxPooledBuf keeps rare huge bodies from being pinned.
	maxPooledBuf = 4 << 20
)

func getBuf() *bytes.Buffer {
	select {
	case b := <-freeBufs:
		return b
	default:
		return new(bytes.Buffer)
	}
}

func putBuf(b *bytes.Buffer) {
	if b.Cap() > maxPooledBuf {
		return
	}
	b.Reset()
	select {
	case freeBufs <- b:
	default:
	}
}

var gzipPool sync.Pool // *gzip.Reader

func (h *httpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	enc := encProto
	defer func() {
		// Last line of defence: a bug must cost one request, not the process.
		if p := recover(); p != nil {
			h.opts.Logger.Error("panic while handling OTLP/HTTP export", "panic", p, "stack", string(debug.Stack()))
			writeStatus(w, enc, http.StatusInternalServerError, codes.Internal, "internal error")
		}
	}()

	if r.URL.Path != TracesPath {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed; use POST", http.StatusMethodNotAllowed)
		return
	}
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case err != nil:
		http.Error(w, "unsupported content type; use "+contentTypeProto+" or "+contentTypeJSON, http.StatusUnsupportedMediaType)
		return
	case mediaType == contentTypeProto:
		enc = encProto
	case mediaType == contentTypeJSON:
		enc = encJSON
	default:
		http.Error(w, fmt.Sprintf("unsupported content type %q; use %s or %s", mediaType, contentTypeProto, contentTypeJSON),
			http.StatusUnsupportedMediaType)
		return
	}
	gzipped := false
	switch ce := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); ce {
	case "", "identity":
	case "gzip", "x-gzip":
		gzipped = true
	default:
		http.Error(w, fmt.Sprintf("unsupported content encoding %q; use gzip or identity", ce), http.StatusUnsupportedMediaType)
		return
	}

	buf := getBuf()
	defer putBuf(buf)
	if status, msg := h.readBody(r, gzipped, buf); status != 0 {
		h.opts.Logger.Debug("rejected OTLP/HTTP export", "status", status, "reason", msg)
		code := codes.InvalidArgument
		if status == http.StatusRequestEntityTooLarge {
			code = codes.ResourceExhausted
		}
		writeStatus(w, enc, status, code, msg)
		return
	}

	spans, rejected, err := h.opts.decode(r.Context(), enc, buf.Bytes())
	var ref *refusal
	if errors.As(err, &ref) {
		h.opts.Observer.SpansRejected(ref.f.reason, ref.spans)
		if ref.f.retry {
			w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(h.opts.retryAfter(ref.f))))
		}
		writeStatus(w, enc, ref.f.httpStatus, ref.f.code, ref.f.message)
		return
	}
	if err != nil {
		h.opts.Logger.Debug("malformed OTLP/HTTP export", "err", err)
		writeStatus(w, enc, http.StatusBadRequest, codes.InvalidArgument, err.Error())
		return
	}
	if len(spans) > 0 {
		if err := h.sink.Submit(r.Context(), spans); err != nil {
			f := classify(err)
			h.opts.observe("http", len(spans), len(rejected), &f)
			logFailure(r.Context(), h.opts.Logger, "OTLP/HTTP", len(spans), f, err)
			if f.retry {
				w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(h.opts.retryAfter(f))))
			}
			writeStatus(w, enc, f.httpStatus, f.code, f.message)
			return
		}
	}
	h.opts.observe("http", len(spans), len(rejected), nil)
	if len(rejected) > 0 {
		h.opts.Logger.Debug("OTLP/HTTP export partially rejected", "stored", len(spans), "rejected", len(rejected))
	}
	resp := partialSuccess(rejected)
	var body []byte
	if enc == encJSON {
		body, err = resp.MarshalJSON()
	} else {
		body, err = resp.MarshalProto()
	}
	if err != nil { // cannot happen for this small message; answer anyway
		h.opts.Logger.Error("encode export response", "err", err)
		body = nil
	}
	w.Header().Set("Content-Type", contentTypeOf(enc))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// readBody reads the (possibly gzipped) body into buf within the size
// limits. It returns a non-zero HTTP status and a message on failure.
func (h *httpReceiver) readBody(r *http.Request, gzipped bool, buf *bytes.Buffer) (int, string) {
	limit := h.opts.MaxBodyBytes
	tooLarge := fmt.Sprintf("request body exceeds %d bytes", limit)
	if r.ContentLength > limit {
		return http.StatusRequestEntityTooLarge, tooLarge
	}
	if !gzipped {
		if r.ContentLength > 0 {
			buf.Grow(int(r.ContentLength))
		}
		n, err := buf.ReadFrom(io.LimitReader(r.Body, limit+1))
		if err != nil {
			return http.StatusBadRequest, "read request body: " + err.Error()
		}
		if n > limit {
			return http.StatusRequestEntityTooLarge, tooLarge
		}
		return 0, ""
	}

	compressed := getBuf()
	defer putBuf(compressed)
	n, err := compressed.ReadFrom(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return http.StatusBadRequest, "read request body: " + err.Error()
	}
	if n > limit {
		return http.StatusRequestEntityTooLarge, tooLarge
	}
	zr, _ := gzipPool.Get().(*gzip.Reader)
	if zr == nil {
		zr, err = gzip.NewReader(compressed)
	} else {
		err = zr.Reset(compressed)
	}
	if err != nil {
		return http.StatusBadRequest, "invalid gzip body: " + err.Error()
	}
	defer gzipPool.Put(zr)

	// The ratio cap bounds the work a small compressed body can demand;
	// it starts past ratioFloor so small repetitive bodies pass.
	outLimit, byRatio := limit, false
	if ratioLimit := max(n*int64(h.opts.MaxDecompressionRatio), ratioFloor); ratioLimit < outLimit {
		outLimit, byRatio = ratioLimit, true
	}
	m, err := buf.ReadFrom(io.LimitReader(zr, outLimit+1))
	if err != nil {
		return http.StatusBadRequest, "invalid gzip body: " + err.Error()
	}
	if m > outLimit {
		if byRatio {
			return http.StatusRequestEntityTooLarge,
				fmt.Sprintf("gzip body expands more than %d times its compressed size", h.opts.MaxDecompressionRatio)
		}
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("decompressed request body exceeds %d bytes", limit)
	}
	return 0, ""
}

// retryAfterSeconds rounds d up to whole seconds, at least one.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

func contentTypeOf(enc wireFormat) string {
	if enc == encJSON {
		return contentTypeJSON
	}
	return contentTypeProto
}

// writeStatus answers with a google.rpc.Status body in the request's
// encoding, as OTLP/HTTP specifies for 4xx and 5xx responses.
func writeStatus(w http.ResponseWriter, enc wireFormat, httpStatus int, code codes.Code, msg string) {
	st := &status.Status{Code: int32(code), Message: msg}
	var body []byte
	var err error
	if enc == encJSON {
		body, err = protojson.Marshal(st)
	} else {
		body, err = proto.Marshal(st)
	}
	if err != nil {
		http.Error(w, msg, httpStatus)
		return
	}
	w.Header().Set("Content-Type", contentTypeOf(enc))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(httpStatus)
	_, _ = w.Write(body)
}

// logFailure logs a failed store: server-side failures loudly, a sender that
// went away or backpressure (visible in metrics) quietly.
func logFailure(ctx context.Context, log *slog.Logger, transport string, spans int, f failure, err error) {
	level := slog.LevelError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, batcher.ErrQueueFull):
		level = slog.LevelDebug
	case f.retry:
		level = slog.LevelWarn
	}
	log.Log(ctx, level, transport+" export not stored", "spans", spans, "answer", f.httpStatus, "err", err)
}
