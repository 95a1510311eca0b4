// Package tlsreload serves TLS from certificate files that may be replaced
// while the gateway runs (cert-manager, a Kubernetes Secret update, certbot):
// the files are re-read every Interval and on Reload, and new handshakes use
// the new certificate (and client CA) without a restart. Connections already
// established keep theirs.
//
// A replacement that does not load (half-written files, a key that does not
// match the certificate, bad PEM) is logged and ignored: the last good
// certificate stays in service, so a botched rotation never takes the
// listener down.
//
// Change detection compares the files' contents (by SHA-256), not their
// modification times, so it also sees the atomic symlink swap Kubernetes uses
// for mounted Secrets and rewrites within one mtime tick.
package tlsreload

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultInterval is how often the files are checked when Options.Interval
// is zero.
const DefaultInterval = 10 * time.Second

// Options say where the files are and how clients must authenticate.
type Options struct {
	CertFile string // PEM certificate chain, leaf first (required)
	KeyFile  string // PEM private key of the leaf (required)
	// ClientCAFile is a PEM bundle of CAs that sign client certificates.
	// When set, clients presenting a certificate must present one it
	// verifies; with RequireClientCert they must present one (mTLS).
	ClientCAFile      string
	RequireClientCert bool
	// MinVersion defaults to TLS 1.2.
	MinVersion uint16
	// NextProtos are the ALPN protocols offered; default h2 and http/1.1,
	// which suits both gRPC and net/http servers.
	NextProtos []string
	// Interval between file checks; 0 means DefaultInterval, negative
	// disables polling (Reload still works).
	Interval time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Reloader holds the current TLS material and keeps it fresh.
type Reloader struct {
	opts Options
	log  *slog.Logger

	cur atomic.Pointer[state]

	mu          sync.Mutex // serialises reloads
	lastFailure string     // the failure last logged, to log each one once

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// state is one consistent set of loaded files.
type state struct {
	digest [sha256.Size]byte // of all files' contents
	config *tls.Config       // served to new handshakes
	noCert *tls.Config       // the same without client certificates
	leaf   *x509.Certificate
}

// New loads the files (failing if they do not load) and starts watching
// them. Close stops the watching.
func New(opts Options) (*Reloader, error) {
	if opts.CertFile == "" || opts.KeyFile == "" {
		return nil, errors.New("tls: cert_file and key_file are both required")
	}
	if opts.RequireClientCert && opts.ClientCAFile == "" {
		return nil, errors.New("tls: require_client_cert needs client_ca_file")
	}
	if opts.MinVersion == 0 {
		opts.MinVersion = tls.VersionTLS12
	}
	if len(opts.NextProtos) == 0 {
		opts.NextProtos = []string{"h2", "http/1.1"}
	}
	if opts.Interval == 0 {
		opts.Interval = DefaultInterval
	}
	r := &Reloader{opts: opts, log: opts.Logger, stop: make(chan struct{}), done: make(chan struct{})}
	if r.log == nil {
		r.log = slog.Default()
	}
	st, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cur.Store(st)
	if opts.Interval > 0 {
		go r.poll()
	} else {
		close(r.done)
	}
	return r, nil
}

// TLSConfig returns a config for a server (grpc credentials.NewTLS,
// http.Server.TLSConfig or tls.NewListener). Every handshake gets the
// material current at that moment.
func (r *Reloader) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: r.opts.MinVersion,
		NextProtos: r.opts.NextProtos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.cur.Load().config, nil
		},
	}
}

// TLSConfigWithoutClientCerts is TLSConfig for a listener that must not ask
// for client certificates even when the options do: one that health probes
// and browsers reach, such as the gateway's API and metrics listener.
func (r *Reloader) TLSConfigWithoutClientCerts() *tls.Config {
	return &tls.Config{
		MinVersion: r.opts.MinVersion,
		NextProtos: r.opts.NextProtos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.cur.Load().noCert, nil
		},
	}
}

// Certificate returns the leaf certificate in service (for its expiry).
func (r *Reloader) Certificate() *x509.Certificate { return r.cur.Load().leaf }

// Reload re-reads the files now (e.g. on SIGHUP). It returns nil when they
// are unchanged or were loaded, and the load error otherwise, in which case
// the previous certificate stays in service.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reloadLocked()
}

func (r *Reloader) reloadLocked() error {
	files, digest, err := r.read()
	if err == nil && digest == r.cur.Load().digest {
		return nil
	}
	var st *state
	if err == nil {
		st, err = r.build(files, digest)
	}
	if err != nil {
		// Log a broken set once, not on every poll while it stays broken.
		if key := fmt.Sprintf("%x %v", digest, err); key != r.lastFailure {
			r.log.Error("TLS files not reloaded; still serving the previous certificate",
				"cert_file", r.opts.CertFile, "err", err)
			r.lastFailure = key
		}
		return err
	}
	r.cur.Store(st)
	r.lastFailure = ""
	r.log.Info("TLS certificate reloaded", "cert_file", r.opts.CertFile,
		"subject", st.leaf.Subject.String(), "not_after", st.leaf.NotAfter)
	return nil
}

func (r *Reloader) poll() {
	defer close(r.done)
	t := time.NewTicker(r.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			_ = r.Reload() // logged inside
		}
	}
}

// Close stops watching the files; the TLS config keeps serving the last
// loaded certificate.
func (r *Reloader) Close() error {
	r.once.Do(func() { close(r.stop) })
	<-r.done
	return nil
}

// loadedFiles are the raw contents of the configured files.
type loadedFiles struct{ cert, key, ca []byte }

func (r *Reloader) read() (loadedFiles, [sha256.Size]byte, error) {
	var f loadedFiles
	var err error
	if f.cert, err = os.ReadFile(r.opts.CertFile); err != nil {
		return f, [sha256.Size]byte{}, fmt.Errorf("read TLS cert_file: %w", err)
	}
	if f.key, err = os.ReadFile(r.opts.KeyFile); err != nil {
		return f, [sha256.Size]byte{}, fmt.Errorf("read TLS key_file: %w", err)
	}
	if r.opts.ClientCAFile != "" {
		if f.ca, err = os.ReadFile(r.opts.ClientCAFile); err != nil {
			return f, [sha256.Size]byte{}, fmt.Errorf("read TLS client_ca_file: %w", err)
		}
	}
	h := sha256.New()
	for _, b := range [][]byte{f.cert, f.key, f.ca} {
		// Length-prefix each part so moving bytes between files changes the digest.
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return f, d, nil
}

func (r *Reloader) load() (*state, error) {
	files, digest, err := r.read()
	if err != nil {
		return nil, err
	}
	return r.build(files, digest)
}

// build parses the files into a server config.
func (r *Reloader) build(f loadedFiles, digest [sha256.Size]byte) (*state, error) {
	cert, err := tls.X509KeyPair(f.cert, f.key)
	if err != nil {
		return nil, fmt.Errorf("load TLS key pair %s, %s: %w", r.opts.CertFile, r.opts.KeyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil { // X509KeyPair fills Leaf since Go 1.23; keep working without it
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("parse TLS certificate %s: %w", r.opts.CertFile, err)
		}
	}
	noCert := &tls.Config{
		MinVersion:   r.opts.MinVersion,
		NextProtos:   r.opts.NextProtos,
		Certificates: []tls.Certificate{cert},
	}
	cfg := noCert.Clone()
	if r.opts.ClientCAFile != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(f.ca) {
			return nil, fmt.Errorf("TLS client_ca_file %s: no PEM certificates in it", r.opts.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if r.opts.RequireClientCert {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return &state{digest: digest, config: cfg, noCert: noCert, leaf: leaf}, nil
}
